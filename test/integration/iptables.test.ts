/**
 * host/iptables against the real iptables (1.8, nf_tables backend here) inside a namespace
 * this test creates and removes (needs root). The root namespace's iptables is never touched.
 *
 * Invariants under test: one apply is at most one `iptables-restore --noflush`; applying the
 * same model again runs only `iptables-save`; changes touch only our chains and our jumps;
 * a foreign chain and rules made by hand, and another agent's prefix, survive every apply;
 * a chain removed from the model is deleted with its jump; a bad token runs nothing; the
 * canonical spelling (canonical.ts) matches what iptables-save prints, so a model written
 * in shorthand converges.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { ValidationError } from '../../contracts/schema.ts';
import { type CommandRunner, type CommandSpec, createCommandRunner } from '../../core/exec.ts';
import { applyIptables, observeIptables } from '../../host/iptables/apply.ts';
import type { IptablesModel } from '../../host/iptables/model.ts';

const real = createCommandRunner();
const NS = `kumo-ipt-${randomBytes(3).toString('hex')}`;
const ran: string[][] = [];
const runner: CommandRunner = {
  run(spec: CommandSpec) {
    ran.push([...spec.argv]);
    return real.run(spec);
  },
};

const inNs = (argv: string[]) => real.run({ argv, netns: NS });
const save = async (tool = 'iptables-save') => (await inNs([tool])).stdout;
/** Rule and chain lines of a save, without the timestamped comments. */
const lines = (text: string) => text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
const foreign = (text: string) => lines(text).filter((l) => !l.includes('kumo-'));

async function apply(model: IptablesModel) {
  ran.length = 0;
  const steps = await applyIptables(runner, model, NS);
  return { steps, ran: ran.map((a) => a.join(' ')) };
}

const L3: IptablesModel = {
  family: 4,
  prefix: 'kumo-l3',
  tables: {
    nat: {
      PREROUTING: [
        ['-d', '172.24.4.20', '-j', 'DNAT', '--to-destination', '10.0.0.5'],
        [
          '-p',
          'tcp',
          '-d',
          '169.254.169.254',
          '--dport',
          '80',
          '-j',
          'REDIRECT',
          '--to-ports',
          '9697',
        ],
      ],
      POSTROUTING: [['-j', 'kumo-l3-snat']],
      snat: [['--source', '10.0.0.0/24', '-j', 'SNAT', '--to-source', '172.24.4.10']],
    },
    filter: {
      FORWARD: [
        ['-j', 'kumo-l3-canon'],
        ['-p', 'tcp', '--dport', '22', '-d', '10.0.0.5', '-j', 'ACCEPT'],
      ],
      canon: [
        '-p tcp -i eth0 -s 10.0.0.1 -d 10.0.0.0/8 -o eth1 -j ACCEPT',
        '--protocol TCP --destination-port 80 -j DROP',
        '-p tcp -m comment --comment foo --dport 22 -j ACCEPT',
        '-p 6 --dport 22 -j ACCEPT',
        '-s 10.0.0.7/24 -j RETURN',
        '! -s 10.0.0.0/24 -j RETURN',
        '-p icmp --icmp-type 8 -j ACCEPT',
        '-p udp --dport 68 --sport 67:68 -j ACCEPT',
        '-p tcp --syn -j DROP',
        '-p tcp ! --dport 22 -j ACCEPT',
        '-p all -s 0.0.0.0/0 -j ACCEPT',
        '! -p tcp -j DROP',
        '--jump ACCEPT --source 1.2.3.4',
        '-m state --state NEW,ESTABLISHED -j ACCEPT',
        '-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
      ].map((r) => r.split(' ')),
    },
  },
};

const OTHER: IptablesModel = {
  family: 4,
  prefix: 'kumo',
  tables: { nat: { POSTROUTING: [['-o', 'eth9', '-j', 'MASQUERADE']] } },
};

describe('host/iptables against real iptables in a namespace', () => {
  let handMade: string[] = [];

  before(async () => {
    await real.run({ argv: ['ip', 'netns', 'add', NS] });
    await inNs(['iptables', '-N', 'foreign-chain']);
    await inNs([
      'iptables',
      '-A',
      'foreign-chain',
      '-p',
      'tcp',
      '--dport',
      '22',
      '-m',
      'comment',
      '--comment',
      'hand made',
      '-j',
      'ACCEPT',
    ]);
    await inNs(['iptables', '-A', 'INPUT', '-j', 'foreign-chain']);
    await inNs(['iptables', '-A', 'FORWARD', '-s', '10.9.0.0/16', '-j', 'DROP']);
    await inNs([
      'iptables',
      '-t',
      'nat',
      '-A',
      'POSTROUTING',
      '-s',
      '10.1.0.0/16',
      '-j',
      'MASQUERADE',
    ]);
    handMade = foreign(await save());
    assert.ok(
      handMade.includes(
        '-A foreign-chain -p tcp -m tcp --dport 22 -m comment --comment "hand made" -j ACCEPT',
      ),
    );
    // Another agent (prefix kumo) in the same namespace.
    assert.equal((await apply(OTHER)).steps.length, 1);
  });

  after(async () => {
    await real.run({ argv: ['ip', 'netns', 'del', NS] }).catch(() => {});
  });

  test('apply: one iptables-restore, and iptables-save shows the SNAT, DNAT and filter rules', async () => {
    const { steps, ran } = await apply(L3);
    assert.deepEqual(ran, ['iptables-save', 'iptables-restore --noflush']);
    assert.equal(steps.length, 1);
    const text = lines(await save());
    for (const line of [
      '-A PREROUTING -j kumo-l3-PREROUTING',
      '-A POSTROUTING -j kumo-l3-POSTROUTING',
      '-A FORWARD -j kumo-l3-FORWARD',
      '-A kumo-l3-PREROUTING -d 172.24.4.20/32 -j DNAT --to-destination 10.0.0.5',
      '-A kumo-l3-snat -s 10.0.0.0/24 -j SNAT --to-source 172.24.4.10',
      '-A kumo-l3-FORWARD -d 10.0.0.5/32 -p tcp -m tcp --dport 22 -j ACCEPT',
      '-A kumo-l3-canon -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j DROP',
    ])
      assert.ok(text.includes(line), `${line} in\n${text.join('\n')}`);
    // Our jumps go first in the builtins, ahead of the hand-made rules.
    assert.equal(
      text.filter((l) => l.startsWith('-A FORWARD '))[0],
      '-A FORWARD -j kumo-l3-FORWARD',
    );
  });

  test('apply again: only iptables-save runs (the shorthand rules converged)', async () => {
    const beforeText = await save();
    const { steps, ran } = await apply(L3);
    assert.deepEqual(steps, []);
    assert.deepEqual(ran, ['iptables-save']);
    assert.deepEqual(lines(await save()), lines(beforeText));
  });

  test('a changed model changes only our chains; foreign rules and the other prefix stay', async () => {
    const other = await observeIptables(real, { family: 4, prefix: 'kumo', netns: NS });
    const next: IptablesModel = {
      ...L3,
      tables: {
        ...L3.tables,
        nat: {
          ...L3.tables.nat,
          snat: [['-s', '10.0.0.0/24', '-j', 'SNAT', '--to-source', '172.24.4.11']],
        },
      },
    };
    const { steps } = await apply(next);
    assert.equal(steps.length, 1);
    assert.match(steps[0]?.why ?? '', /^nat: kumo-l3-snat rules differ$/);
    const text = await save();
    assert.ok(
      lines(text).includes('-A kumo-l3-snat -s 10.0.0.0/24 -j SNAT --to-source 172.24.4.11'),
    );
    assert.ok(!text.includes('172.24.4.10'));
    assert.deepEqual(foreign(text), handMade);
    assert.deepEqual(await observeIptables(real, { family: 4, prefix: 'kumo', netns: NS }), other);
    assert.deepEqual((await apply(next)).steps, []);
  });

  test('a duplicated jump is removed, never added twice', async () => {
    await inNs(['iptables', '-I', 'FORWARD', '3', '-j', 'kumo-l3-FORWARD']);
    const { steps } = await apply(L3);
    assert.match(steps[0]?.why ?? '', /FORWARD has 2 jump\(s\) to our wrapper, wants 1/);
    const jumps = lines(await save()).filter((l) => l === '-A FORWARD -j kumo-l3-FORWARD');
    assert.equal(jumps.length, 1);
  });

  test('removing chains from the model deletes them and their jumps', async () => {
    const smaller: IptablesModel = {
      ...L3,
      tables: {
        filter: L3.tables.filter ?? {},
        nat: { PREROUTING: L3.tables.nat?.PREROUTING ?? [] },
      },
    };
    await apply(smaller);
    let text = await save();
    assert.ok(!text.includes('kumo-l3-snat') && !text.includes('kumo-l3-POSTROUTING'), text);
    assert.ok(text.includes('-A PREROUTING -j kumo-l3-PREROUTING'));
    await apply({ ...L3, tables: {} });
    text = await save();
    assert.ok(!text.includes('kumo-l3'), text);
    assert.deepEqual(foreign(text), handMade);
    assert.ok(text.includes('-A kumo-POSTROUTING -o eth9 -j MASQUERADE'), 'other prefix intact');
    assert.deepEqual((await apply({ ...L3, tables: {} })).ran, ['iptables-save']);
  });

  test('a bad token is refused before anything runs', async () => {
    const beforeText = await save();
    const bad: IptablesModel = { ...L3, tables: { filter: { FORWARD: [['-j', 'ACCEPT\n-F']] } } };
    await assert.rejects(
      apply(bad),
      (e: unknown) => e instanceof ValidationError && e.field === 'tables.filter.FORWARD[0][1]',
    );
    assert.deepEqual(ran, []);
    assert.deepEqual(lines(await save()), lines(beforeText));
  });

  test('IPv6: the same model shape through ip6tables, converging, IPv4 untouched', async () => {
    await apply(L3);
    const v4 = await save();
    const v6: IptablesModel = {
      family: 6,
      prefix: 'kumo-l3',
      tables: {
        filter: {
          INPUT: [
            ['-p', 'icmpv6', '--icmpv6-type', '128', '-j', 'ACCEPT'],
            ['-s', '2001:DB8:0:0::5/64', '-p', 'tcp', '--dport', '22', '-j', 'ACCEPT'],
          ],
        },
        nat: { POSTROUTING: [['-s', 'fd00::/64', '-j', 'SNAT', '--to-source', '2001:db8::10']] },
      },
    };
    const first = await apply(v6);
    assert.deepEqual(first.ran, ['ip6tables-save', 'ip6tables-restore --noflush']);
    const text = lines(await save('ip6tables-save'));
    assert.ok(
      text.includes('-A kumo-l3-INPUT -s 2001:db8::/64 -p tcp -m tcp --dport 22 -j ACCEPT'),
    );
    assert.ok(text.includes('-A INPUT -j kumo-l3-INPUT'));
    assert.deepEqual((await apply(v6)).ran, ['ip6tables-save']);
    assert.deepEqual(lines(await save()), lines(v4));
  });
});
