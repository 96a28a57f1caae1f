/**
 * The layering of ARCHITECTURE §2, checked by `npm run lint:deps` and run_tests.sh's lint
 * step: no cycles anywhere (type-only imports count: they tie modules together as much as
 * value imports do), contracts/ stands alone, core/ sits on contracts/, host/ on core/,
 * agents, the API and the CLI never reach into each other; bin/, test/, bench/ and tools/ are free.
 *
 * Invariant: the rules see every edge or fail. TypeScript is parsed with swc (the project's
 * TypeScript 7.0 has no in-process API dependency-cruiser can use), every import must
 * resolve, and without swc this config refuses to load rather than let the cruiser skip
 * every .ts file and pass (test/unit/layering.test.ts proves bad imports fail).
 */
const OURS = '^(bin|contracts|core|host|agents|api|cli|test|bench|tools)/';

// Without swc, dependency-cruiser skips .ts files with a warning and finds no violation.
try {
  require.resolve('@swc/core');
} catch (cause) {
  throw new Error('.dependency-cruiser.cjs: @swc/core is needed to read TypeScript', { cause });
}

/** A rule forbidding `from` to import any of our modules outside `allowed`. */
const onlyImports = (name, from, allowed, comment) => ({
  name,
  severity: 'error',
  comment,
  from: { path: `^${from}/` },
  to: { path: OURS, pathNot: `^(${allowed.join('|')})/` },
});

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'Cycles (type-only imports included) make layers meaningless; break them.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      comment: 'An import the cruiser cannot resolve is an edge it cannot check.',
      from: {},
      to: { couldNotResolve: true },
    },
    onlyImports(
      'contracts-stand-alone',
      'contracts',
      ['contracts'],
      'contracts/ is what api, cli and agents share; it imports nothing else of ours.',
    ),
    onlyImports(
      'core-on-contracts',
      'core',
      ['core', 'contracts'],
      'core/ imports only core/ and contracts/.',
    ),
    onlyImports(
      'host-on-core',
      'host',
      ['host', 'core', 'contracts'],
      'Tool modules in host/ import only host/, core/ and contracts/.',
    ),
    onlyImports(
      'cli-on-core',
      'cli',
      ['cli', 'contracts', 'core'],
      'cli/ imports only cli/, contracts/ and core/.',
    ),
    {
      name: 'agents-not-api-cli',
      severity: 'error',
      comment: 'Agents talk to the API over AMQP only; they never import api/ or cli/.',
      from: { path: '^agents/' },
      to: { path: '^(api|cli)/' },
    },
    {
      name: 'plans-stay-pure',
      severity: 'error',
      comment:
        'desired, plan and the other pure modules of an agent import no I/O: no observe.ts, no daemon client or socket session, no fs, process or network module.',
      from: {
        path: '^agents/((?!lib/)[^/]+/(desired|plan|target|vif-plan|steps|domain-state)|lib/ns-port)[.]ts$',
      },
      to: {
        dependencyTypesNot: ['type-only'],
        path: '(^agents/[^/]+/observe[.]ts$|^host/session/|^host/libvirt/client[.]ts$|^host/ovs/ovsdb[.]ts$|^(node:)?(fs|fs/promises|child_process|net|dgram)$)',
      },
    },
    {
      name: 'api-not-agents-cli',
      severity: 'error',
      comment: 'The API never imports agents/ or cli/.',
      from: { path: '^api/' },
      to: { path: '^(agents|cli)/' },
    },
  ],
  required: [],
  options: {
    parser: 'swc',
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^node_modules/' },
    moduleSystems: ['es6', 'cjs'],
    enhancedResolveOptions: {
      extensions: ['.ts', '.js', '.json'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types'],
    },
  },
};
