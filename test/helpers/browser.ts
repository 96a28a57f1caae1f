/**
 * Debian's Chromium (/usr/bin/chromium), headless, driven by playwright-core, for the
 * dashboard's browser tests and bench. Screenshots go to the artefact directory
 * ($KUMO_TEST_ARTIFACTS, default test-artifacts/ in the checkout).
 *
 * Invariants: the browser runs with a fresh profile and without any background networking
 * (this machine's network is closed, and tests send only to loopback); a page records
 * every request that leaves 127.0.0.1, every Content-Security-Policy violation and every
 * console error, so a test can assert there were none. A missing Chromium fails the test
 * with the reason; it never skips.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { REPO } from './env.ts';

export const CHROMIUM = '/usr/bin/chromium';

export const ARTIFACTS = process.env.KUMO_TEST_ARTIFACTS ?? join(REPO, 'test-artifacts');

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} is missing: install Debian's chromium (run_tests.sh does)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

export interface WatchedPage {
  page: Page;
  /** Requests to anything but 127.0.0.1, answers >= 400, CSP violations, console errors. */
  problems: string[];
  screenshot(name: string): Promise<string>;
}

export async function watchedPage(browser: Browser, dir: string): Promise<WatchedPage> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const problems: string[] = [];
  page.on('request', (r) => {
    const url = new URL(r.url());
    if (url.protocol !== 'data:' && url.hostname !== '127.0.0.1')
      problems.push(`request to ${r.url()}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`${r.request().method()} ${r.url()}: ${r.status()}`);
  });
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource'))
      problems.push(`console error: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) =>
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`),
    );
  });
  const out = join(ARTIFACTS, dir);
  mkdirSync(out, { recursive: true });
  return {
    page,
    problems,
    async screenshot(name) {
      const path = join(out, `${name}.png`);
      await page.screenshot({ path, fullPage: true });
      return path;
    },
  };
}
