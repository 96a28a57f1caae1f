/**
 * systemd/: every unit passes `systemd-analyze verify` (systemd 252, offline: no systemd
 * as PID 1 needed) and carries the hardening the design requires; the sysusers and
 * tmpfiles files really create the user and directories in a scratch root.
 *
 * verify checks that ExecStart's binary exists and is executable, so each unit is copied
 * to a temp dir with ExecStart pointing at this Node binary running the repo's
 * bin/<binary>.ts: the check then depends on the tree, not on what is installed.
 * verify exits 0 on unknown keys or bad values (it only warns), so any output fails.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const UNIT_DIR = join(REPO, 'systemd');
const CONFIG_ARGS = '--config-file /etc/kumo/kumo.conf';

/** Agents that create named network namespaces (see the comment in their units). */
const NETNS_AGENTS = ['kumo-dhcp-agent', 'kumo-l3-agent', 'kumo-lbaas-agent'];
const SANDBOXED = ['kumo-api', 'kumo-ovs-agent', 'kumo-volume-agent', 'kumo-compute-agent'];
const BINARIES = [...SANDBOXED, ...NETNS_AGENTS];

/** Settings that give a unit a private mount namespace (systemd 252, namespace.c). */
const MOUNT_NS_KEYS = [
  'ProtectSystem',
  'ProtectHome',
  'PrivateTmp',
  'PrivateDevices',
  'PrivateMounts',
  'ReadWritePaths',
  'ReadOnlyPaths',
  'InaccessiblePaths',
  'TemporaryFileSystem',
  'BindPaths',
  'BindReadOnlyPaths',
  'ProtectKernelTunables',
  'ProtectKernelModules',
  'ProtectKernelLogs',
  'ProtectControlGroups',
  'ProtectProc',
  'ProcSubset',
  'MountAPIVFS',
  'RootDirectory',
  'RootImage',
];

type Unit = Map<string, Map<string, string[]>>;

function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = new Map();
      unit.set(header[1] as string, section);
      continue;
    }
    const eq = line.indexOf('=');
    assert.ok(section && eq > 0, `not a key=value line inside a section: ${raw}`);
    const key = line.slice(0, eq).trim();
    const list = section.get(key) ?? [];
    list.push(line.slice(eq + 1).trim());
    section.set(key, list);
  }
  return unit;
}

function values(unit: Unit, section: string, key: string): string[] {
  return unit.get(section)?.get(key) ?? [];
}

function one(unit: Unit, section: string, key: string): string | undefined {
  const v = values(unit, section, key);
  return v.at(-1);
}

function requireTool(argv: string[]): string {
  const r = spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    assert.fail(
      `\`${argv.join(' ')}\` is required by this test and failed: ${r.error?.message ?? r.stderr}`,
    );
  }
  return r.stdout;
}

function readUnit(binary: string): { text: string; unit: Unit } {
  const text = readFileSync(join(UNIT_DIR, `${binary}.service`), 'utf8');
  return { text, unit: parseUnit(text) };
}

let knownCaps: Set<string>;
let scratch: string;

before(() => {
  requireTool(['systemd-analyze', '--version']);
  // `systemd-analyze verify` ignores unknown capability names silently: check them here.
  const table = requireTool(['systemd-analyze', 'capability']);
  knownCaps = new Set(
    table
      .split('\n')
      .map((l) => l.trim().split(/\s+/)[0] ?? '')
      .filter((n) => n.startsWith('cap_'))
      .map((n) => n.toUpperCase()),
  );
  assert.ok(knownCaps.has('CAP_NET_ADMIN'), `unexpected capability table: ${table}`);
  scratch = mkdtempSync(join(tmpdir(), 'kumo-systemd-'));
});

after(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('systemd units', () => {
  test('systemd-analyze verify passes on every unit, with no warning', () => {
    const dir = join(scratch, 'units');
    mkdirSync(dir);
    const paths: string[] = [];
    for (const binary of BINARIES) {
      const script = join(REPO, 'bin', `${binary}.ts`);
      assert.ok(existsSync(script), `bin/${binary}.ts is missing (the unit starts it)`);
      const { text } = readUnit(binary);
      const exec = `ExecStart=/usr/local/bin/${binary} ${CONFIG_ARGS}`;
      assert.ok(text.includes(`\n${exec}\n`), `${binary}.service must have \`${exec}\``);
      const local = `ExecStart=${process.execPath} ${script} ${CONFIG_ARGS}`;
      const path = join(dir, `${binary}.service`);
      writeFileSync(path, text.replace(exec, local));
      paths.push(path);
    }
    const r = spawnSync('systemd-analyze', ['verify', ...paths], { encoding: 'utf8' });
    assert.ifError(r.error);
    const output = `${r.stdout}${r.stderr}`.trim();
    assert.equal(r.status, 0, `systemd-analyze verify exited ${r.status}:\n${output}`);
    assert.equal(output, '', `systemd-analyze verify warned:\n${output}`);
  });

  for (const binary of BINARIES) {
    test(`${binary}.service: notify, restart, watchdog, hardening`, () => {
      const { unit } = readUnit(binary);
      const S = 'Service';
      assert.equal(one(unit, S, 'Type'), 'notify');
      assert.equal(one(unit, S, 'NotifyAccess'), 'all', 'systemd-notify sends for the daemon');
      assert.equal(one(unit, S, 'Restart'), 'on-failure');
      assert.match(one(unit, S, 'WatchdogSec') ?? '', /^[1-9][0-9]*s$/, 'WatchdogSec=<n>s');
      assert.equal(one(unit, S, 'NoNewPrivileges'), 'yes');
      assert.ok(
        values(unit, 'Unit', 'After').join(' ').split(/\s+/).includes('network-online.target'),
        'After=network-online.target',
      );
      assert.ok(values(unit, 'Unit', 'Wants').join(' ').includes('network-online.target'));
      assert.deepEqual(values(unit, 'Install', 'WantedBy'), ['multi-user.target']);

      const bounding = values(unit, S, 'CapabilityBoundingSet');
      assert.equal(bounding.length, 1, 'exactly one CapabilityBoundingSet= line');
      const caps = [...bounding, ...values(unit, S, 'AmbientCapabilities')]
        .join(' ')
        .split(/\s+/)
        .filter(Boolean);
      for (const cap of caps) assert.ok(knownCaps.has(cap), `unknown capability ${cap}`);

      if (NETNS_AGENTS.includes(binary)) {
        // A private mount namespace would hide (and lose on restart) the /run/netns mounts.
        for (const key of MOUNT_NS_KEYS) {
          assert.deepEqual(values(unit, S, key), [], `${key}= must not be set on ${binary}`);
        }
        assert.equal(one(unit, S, 'KillMode'), 'process', 'children must survive restarts');
        assert.ok(caps.includes('CAP_SYS_ADMIN') && caps.includes('CAP_NET_ADMIN'));
        assert.equal(one(unit, S, 'User'), undefined, 'runs as root with bounded caps');
      } else {
        assert.equal(one(unit, S, 'ProtectSystem'), 'strict');
        assert.equal(one(unit, S, 'ProtectHome'), 'yes');
        assert.equal(one(unit, S, 'PrivateTmp'), 'yes');
        const rw = values(unit, S, 'ReadWritePaths').join(' ').split(/\s+/);
        const name = binary.replace(/^kumo-/, '').replace(/-agent$/, '');
        assert.ok(rw.includes(`/var/lib/kumo/${name}`), `ReadWritePaths has /var/lib/kumo/${name}`);
        assert.ok(rw.includes(`/run/kumo/${name}`), `ReadWritePaths has /run/kumo/${name}`);
      }

      if (binary === 'kumo-lbaas-agent') {
        // haproxy binds VIP ports below 1024, then drops to nobody (SETUID/SETGID); the agent
        // and a reloading haproxy signal that non-root process (KILL).
        assert.deepEqual(caps, [
          'CAP_NET_ADMIN',
          'CAP_SYS_ADMIN',
          'CAP_NET_BIND_SERVICE',
          'CAP_SETUID',
          'CAP_SETGID',
          'CAP_KILL',
        ]);
        // Its hard open-file limit bounds every pool's maxconn (2 descriptors a connection).
        assert.equal(one(unit, S, 'LimitNOFILE'), '1024:262144');
      }

      if (binary === 'kumo-api') {
        assert.equal(one(unit, S, 'User'), 'kumo');
        assert.deepEqual(caps, [], 'kumo-api needs no capability');
        assert.ok(values(unit, 'Unit', 'Wants').join(' ').includes('postgresql.service'));
      }
    });
  }
});

describe('sysusers and tmpfiles', () => {
  test('create the kumo user and the directories, in a scratch root', () => {
    requireTool(['systemd-sysusers', '--version']);
    requireTool(['systemd-tmpfiles', '--version']);
    const root = join(scratch, 'root');
    mkdirSync(join(root, 'etc'), { recursive: true });

    const su = spawnSync(
      'systemd-sysusers',
      [`--root=${root}`, join(UNIT_DIR, 'kumo.sysusers.conf')],
      { encoding: 'utf8' },
    );
    assert.ifError(su.error);
    assert.equal(su.status, 0, `systemd-sysusers exited ${su.status}:\n${su.stderr}`);
    const passwd = readFileSync(join(root, 'etc/passwd'), 'utf8');
    const entry = passwd.split('\n').find((l) => l.startsWith('kumo:'));
    assert.ok(entry, `no kumo user in ${passwd}`);
    const [, , uid, gid, , , shell] = entry.split(':');
    assert.equal(shell, '/usr/sbin/nologin');

    const tf = spawnSync(
      'systemd-tmpfiles',
      ['--create', `--root=${root}`, join(UNIT_DIR, 'kumo.tmpfiles.conf')],
      { encoding: 'utf8' },
    );
    assert.ifError(tf.error);
    const out = `${tf.stdout}${tf.stderr}`.trim();
    assert.equal(tf.status, 0, `systemd-tmpfiles exited ${tf.status}:\n${out}`);
    assert.equal(out, '', `systemd-tmpfiles warned:\n${out}`);

    const expect = (path: string, mode: number, owner: 'root' | 'kumo') => {
      const st = statSync(join(root, path));
      assert.ok(st.isDirectory(), `${path} is not a directory`);
      assert.equal((st.mode & 0o7777).toString(8), mode.toString(8), `mode of ${path}`);
      const [u, g] = owner === 'root' ? [0, 0] : [Number(uid), Number(gid)];
      assert.deepEqual([st.uid, st.gid], [u, g], `owner of ${path}`);
    };
    expect('var/lib/kumo', 0o755, 'root');
    expect('run/kumo', 0o755, 'root');
    expect('var/lib/kumo/api', 0o750, 'kumo');
    expect('run/kumo/api', 0o750, 'kumo');
    // dnsmasq re-reads its files as nobody; qemu reads instance files as libvirt-qemu.
    expect('var/lib/kumo/dhcp', 0o755, 'root');
    expect('var/lib/kumo/compute', 0o755, 'root');

    // Every path a unit must write (no "-" prefix) is created by tmpfiles.
    for (const binary of BINARIES) {
      const { unit } = readUnit(binary);
      const rw = values(unit, 'Service', 'ReadWritePaths').join(' ').split(/\s+/);
      for (const p of rw.filter((x) => x.startsWith('/'))) {
        assert.ok(
          existsSync(join(root, p)),
          `${binary}: ReadWritePaths ${p} not created by tmpfiles`,
        );
      }
    }
  });
});
