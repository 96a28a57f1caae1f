/**
 * .dependency-cruiser.cjs: the layering rules of ARCHITECTURE §2, run by run_tests.sh.
 *
 * Invariant under test: the rules really see the project's edges (.ts specifiers, type-only
 * imports included) and fail on a bad one, so a green lint step means a layered tree and
 * not a tree the cruiser could not read. Bad trees are built in a temp dir, never in ours.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../helpers/env.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CONFIG = join(REPO, '.dependency-cruiser.cjs');
const DEPCRUISE = join(REPO, 'node_modules', '.bin', 'depcruise');
const DIRS = ['bin', 'contracts', 'core', 'host', 'agents', 'api', 'cli', 'test', 'bench', 'tools'];

interface Dependency {
  resolved: string;
  dependencyTypes: string[];
}
interface CruiseResult {
  modules: { source: string; dependencies: Dependency[] }[];
  summary: { violations: { rule: { name: string }; from: string; to: string }[] };
}

const depcruise = (cwd: string, args: string[]) =>
  // The JSON result of the whole tree is over spawnSync's default 1 MiB buffer.
  spawnSync(DEPCRUISE, ['--config', CONFIG, ...args], {
    cwd,
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });

/** The JSON result, and the exit status of the run as run_tests.sh does it (`err` output). */
function cruise(cwd: string, dirs: string[]): { status: number | null; result: CruiseResult } {
  const json = depcruise(cwd, ['--output-type', 'json', ...dirs]);
  assert.ok(json.stdout.startsWith('{'), `depcruise printed no result:\n${json.stderr}`);
  const { status } = depcruise(cwd, dirs);
  return { status, result: JSON.parse(json.stdout) as CruiseResult };
}

/** Writes `files` (path → text) under a new temp dir and cruises its top-level dirs. */
function cruiseTree(files: Record<string, string>) {
  const dir = tempDir('kumo-layering-');
  after(() => dir.cleanup());
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir.path, path)), { recursive: true });
    writeFileSync(join(dir.path, path), text);
  }
  const tops = [...new Set(Object.keys(files).map((p) => p.split('/')[0] as string))];
  return cruise(dir.path, tops);
}

const violations = (r: CruiseResult) =>
  r.summary.violations.map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`).sort();

describe('layering rules', () => {
  test('the real tree is read: .ts specifiers resolve and type-only edges are seen', () => {
    const { result } = cruise(REPO, DIRS);
    assert.ok(result.modules.length > 150, `only ${result.modules.length} modules cruised`);
    const daemon = result.modules.find((m) => m.source === 'core/daemon.ts');
    const config = daemon?.dependencies.find((d) => d.resolved === 'core/config.ts');
    assert.ok(config, 'core/daemon.ts -> core/config.ts not seen');
    const run = result.modules.find((m) => m.source === 'agents/run.ts');
    const agents = run?.dependencies.find((d) => d.resolved === 'contracts/agents.ts');
    assert.ok(agents?.dependencyTypes.includes('type-only'), 'type-only edge not seen');
  });

  test('a layered tree passes', () => {
    const { status, result } = cruiseTree({
      'contracts/a.ts': 'export const a = 1;\n',
      'core/b.ts': "import { a } from '../contracts/a.ts';\nexport const b = a;\n",
      'host/c.ts': "import { b } from '../core/b.ts';\nexport const c = b;\n",
      'agents/d.ts': "import { c } from '../host/c.ts';\nexport const d = c;\n",
    });
    assert.deepEqual(violations(result), []);
    assert.equal(status, 0);
  });

  test('bad imports fail, type-only ones and cycles included', () => {
    const { status, result } = cruiseTree({
      'contracts/a.ts': "import type { B } from '../core/b.ts';\nexport type A = B;\n",
      'core/b.ts': "import type { E } from '../api/e.ts';\nexport type B = E;\n",
      'core/x.ts': "import type { Y } from './y.ts';\nexport type X = Y | 1;\n",
      'core/y.ts': "import type { X } from './x.ts';\nexport type Y = X | 2;\n",
      'host/c.ts': "import { d } from '../agents/d.ts';\nexport const c = d;\n",
      'agents/d.ts': "import { e } from '../api/e.ts';\nexport const d = e;\n",
      'api/e.ts': "import { f } from '../cli/f.ts';\nexport const e = f;\nexport type E = 1;\n",
      'cli/f.ts': "import { g } from '../host/g.ts';\nexport const f = g;\n",
      'host/g.ts': "import { nope } from './missing.ts';\nexport const g = nope;\n",
    });
    assert.notEqual(status, 0);
    assert.deepEqual(violations(result), [
      'agents-not-api-cli: agents/d.ts -> api/e.ts',
      'api-not-agents-cli: api/e.ts -> cli/f.ts',
      'cli-on-core: cli/f.ts -> host/g.ts',
      'contracts-stand-alone: contracts/a.ts -> core/b.ts',
      'core-on-contracts: core/b.ts -> api/e.ts',
      'host-on-core: host/c.ts -> agents/d.ts',
      'no-circular: core/x.ts -> core/y.ts',
      'not-to-unresolvable: host/g.ts -> ./missing.ts',
    ]);
  });

  test('a plan or desired module that imports I/O fails; type-only imports and the executor pass', () => {
    const { status, result } = cruiseTree({
      'agents/dhcp/observe.ts': 'export const seen = 1;\nexport type Seen = 1;\n',
      'agents/dhcp/plan.ts':
        "import { seen } from './observe.ts';\nimport type { Seen } from './observe.ts';\nexport const p: Seen = seen;\n",
      'agents/dhcp/desired.ts':
        "import { readFile } from 'node:fs/promises';\nexport const d = readFile;\n",
      'agents/lib/steps.ts': "import { rm } from 'node:fs/promises';\nexport const s = rm;\n",
    });
    assert.notEqual(status, 0);
    assert.deepEqual(violations(result), [
      'plans-stay-pure: agents/dhcp/desired.ts -> fs/promises',
      'plans-stay-pure: agents/dhcp/plan.ts -> agents/dhcp/observe.ts',
    ]);
  });
});
