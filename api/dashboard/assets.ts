/**
 * The dashboard's files, read once when the app is built and served from memory: the page
 * itself, its own modules (web/dashboard/) and the libraries it imports (Preact, its hooks,
 * htm, Cytoscape.js), taken from node_modules. Nothing comes from a CDN.
 *
 * Cytoscape.js adds a <style> element unless one with its id exists: the page's own
 * stylesheet carries that id (and Cytoscape's one rule), so nothing inline is needed.
 *
 * Invariants: only the files listed here are served (a name is looked up, never joined
 * into a path); the page's one inline script is its import map, allowed by its SHA-256 in
 * the Content-Security-Policy, which permits nothing else inline, no eval and no origin
 * but kumo-api's own.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

const WEB_DIR = join(import.meta.dirname, '..', '..', 'web', 'dashboard');

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** The libraries, by the name the import map gives them → their ES module file. */
const VENDOR: Record<string, string> = {
  preact: import.meta.resolve('preact'),
  'preact/hooks': import.meta.resolve('preact/hooks'),
  htm: import.meta.resolve('htm'),
  cytoscape: import.meta.resolve('cytoscape').replace(/\.esm\.mjs$/, '.esm.min.mjs'),
};
const vendorFile = (name: string) => `${name.replace('/', '-')}.mjs`;

const asset = (body: Buffer, type: string): Asset => ({
  body,
  type,
  etag: `"${createHash('sha256').update(body).digest('hex').slice(0, 20)}"`,
});

function typeOf(name: string): string | undefined {
  const dot = name.lastIndexOf('.');
  return dot < 0 ? undefined : TYPES[name.slice(dot)];
}

function page(importMap: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Kumo</title>
<link rel="stylesheet" id="__________cytoscape_stylesheet" href="/dashboard/static/style.css">
<script type="importmap">${importMap}</script>
<script type="module" src="/dashboard/static/app.js"></script>
</head>
<body><main id="app"><p class="muted">Loading…</p></main></body>
</html>
`;
}

export interface DashboardAssets {
  /** `/dashboard/static/<name>` and `/dashboard/vendor/<name>` files. */
  get(dir: 'static' | 'vendor', name: string): Asset | undefined;
  index: Asset;
  csp: string;
}

export function loadDashboardAssets(): DashboardAssets {
  const own = new Map<string, Asset>();
  for (const name of readdirSync(WEB_DIR)) {
    const type = typeOf(name);
    if (type) own.set(name, asset(readFileSync(join(WEB_DIR, name)), type));
  }
  const vendor = new Map<string, Asset>();
  const imports: Record<string, string> = {};
  for (const [name, url] of Object.entries(VENDOR)) {
    vendor.set(vendorFile(name), asset(readFileSync(fileURLToPath(url)), TYPES['.mjs'] as string));
    imports[name] = `/dashboard/vendor/${vendorFile(name)}`;
  }
  const importMap = JSON.stringify({ imports });
  const hash = createHash('sha256').update(importMap).digest('base64');
  const csp = [
    "default-src 'none'",
    `script-src 'self' 'sha256-${hash}'`,
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "font-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
  return {
    get: (dir, name) => (dir === 'static' ? own.get(name) : vendor.get(name)),
    index: asset(Buffer.from(page(importMap)), 'text/html; charset=utf-8'),
    csp,
  };
}
