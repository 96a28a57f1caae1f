/**
 * host/iptables, pure parts: model validation (errors name the field), the canonical
 * spelling of rules, the iptables-save parser on real save text (test/golden/iptables/
 * save-*.txt were captured from iptables 1.8.9 nf_tables in a scratch namespace), what one
 * prefix owns, the restore text against golden files, and the plan (no step when equal).
 *
 * `KUMO_UPDATE_GOLDEN=1` rewrites the render golden files (then review the diff).
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ValidationError } from '../../contracts/schema.ts';
import type { CommandRunner, CommandSpec } from '../../core/exec.ts';
import { applyIptables, planIptables } from '../../host/iptables/apply.ts';
import { canonicalRule } from '../../host/iptables/canonical.ts';
import { type IptablesModel, isOwnedChain, validateModel } from '../../host/iptables/model.ts';
import { render } from '../../host/iptables/render.ts';
import { ownedState, parseSave, splitWords } from '../../host/iptables/save.ts';

const GOLDEN = join(import.meta.dirname, '..', 'golden', 'iptables');
const read = (name: string) => readFileSync(join(GOLDEN, name), 'utf8');

function golden(name: string, actual: string) {
  const path = join(GOLDEN, name);
  if (process.env.KUMO_UPDATE_GOLDEN === '1') writeFileSync(path, actual);
  assert.equal(actual, readFileSync(path, 'utf8'), `golden file ${name}`);
}

/** What the saved fixture holds under kumo-l3, written as a model (non-canonical on purpose). */
const L3: IptablesModel = {
  family: 4,
  prefix: 'kumo-l3',
  tables: {
    nat: {
      PREROUTING: [['-d', '172.24.4.20', '-j', 'DNAT', '--to-destination', '10.0.0.5']],
      POSTROUTING: [['-j', 'kumo-l3-snat']],
      snat: [['--source', '10.0.0.0/24', '-j', 'SNAT', '--to-source', '172.24.4.10']],
    },
    filter: {
      FORWARD: [
        ['-p', 'tcp', '--dport', '22', '-d', '10.0.0.5', '-j', 'ACCEPT'],
        ['-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', 'ACCEPT'],
      ],
    },
  },
};

function refused(model: unknown, field: string, reason?: RegExp) {
  assert.throws(
    () => validateModel(model as IptablesModel),
    (e: unknown) => {
      assert.ok(e instanceof ValidationError, String(e));
      assert.equal(e.field, field, e.message);
      if (reason) assert.match(e.reason, reason);
      return true;
    },
  );
}

const withRule = (rule: unknown[]) =>
  ({ ...L3, tables: { filter: { FORWARD: [rule] } } }) as IptablesModel;

describe('model validation', () => {
  test('a good model becomes full chain names, canonical rules and one jump per wrapper', () => {
    const s = validateModel(L3);
    const nat = s.tables.get('nat');
    assert.deepEqual(
      [...(nat?.chains.keys() ?? [])],
      ['kumo-l3-PREROUTING', 'kumo-l3-POSTROUTING', 'kumo-l3-snat'],
    );
    assert.deepEqual(Object.fromEntries(nat?.jumps ?? []), { PREROUTING: 1, POSTROUTING: 1 });
    assert.deepEqual(s.tables.get('filter')?.chains.get('kumo-l3-FORWARD')?.[0], [
      ...['-d', '10.0.0.5/32', '-p', 'tcp', '-m', 'tcp', '--dport', '22', '-j', 'ACCEPT'],
    ]);
  });

  test('bad family, prefix and table are refused by name', () => {
    refused({ ...L3, family: 5 }, 'family');
    refused({ ...L3, prefix: 'Kumo' }, 'prefix');
    refused({ ...L3, prefix: 'kumo-l3-a-very-long-prefix' }, 'prefix');
    refused({ ...L3, tables: { security: {} } }, 'tables.security');
    refused({ ...L3, tables: { nat: [] } }, 'tables.nat');
  });

  test('chain names: builtin of that table or [a-z0-9_], at most 28 characters', () => {
    refused({ ...L3, tables: { filter: { 'float-snat': [] } } }, 'tables.filter.float-snat');
    refused({ ...L3, tables: { filter: { POSTROUTING: [] } } }, 'tables.filter.POSTROUTING');
    refused({ ...L3, tables: { raw: { FORWARD: [] } } }, 'tables.raw.FORWARD');
    refused({ ...L3, tables: { nat: { snat: 'x' } } }, 'tables.nat.snat', /array of rules/);
    const long = 'a_chain_name_that_is_far_too_long';
    refused({ ...L3, tables: { nat: { [long]: [] } } }, `tables.nat.${long}`, /longer than 28/);
  });

  test('every token is a single safe word; the error names rule and token', () => {
    for (const bad of ['a b', 'x\n-A INPUT', '"q"', "'q'", 'a;b', '#c', '', 'tab\t', '$x'])
      refused(
        withRule(['-j', 'ACCEPT', '-m', 'comment', '--comment', bad]),
        'tables.filter.FORWARD[0][5]',
      );
    refused(withRule([]), 'tables.filter.FORWARD[0]', /non-empty/);
    refused(withRule(['-j', 7]), 'tables.filter.FORWARD[0][1]');
  });

  test('commands, table switches and family switches are not rule tokens', () => {
    for (const cmd of ['-A', '-I', '-D', '-X', '-F', '-N', '-P', '-t', '--table', '-6'])
      refused(withRule(['-j', 'ACCEPT', cmd, 'INPUT']), 'tables.filter.FORWARD[0][2]', /command/);
  });

  test('a jump to a chain of ours that the model does not declare is refused', () => {
    refused(withRule(['-j', 'kumo-l3-missing']), 'tables.filter.FORWARD[0][1]', /not in the model/);
    refused(withRule(['-j']), 'tables.filter.FORWARD[0][0]', /needs a target/);
    // A foreign target is the caller's business (iptables-restore refuses it if absent).
    assert.ok(validateModel(withRule(['-j', 'neutron-filter-top'])));
  });

  test('-s/-d take one address of the model family, never a name or a list', () => {
    refused(withRule(['-s', 'localhost', '-j', 'ACCEPT']), 'tables.filter.FORWARD[0][1]');
    refused(withRule(['-s', '10.0.0.1,10.0.0.2', '-j', 'ACCEPT']), 'tables.filter.FORWARD[0][1]');
    refused(withRule(['-d', '2001:db8::1', '-j', 'ACCEPT']), 'tables.filter.FORWARD[0][1]');
    refused(withRule(['-d', '10.0.0.0/33', '-j', 'ACCEPT']), 'tables.filter.FORWARD[0][1]');
    refused(withRule(['-s', '10.0.0.1', '-s', '10.0.0.2']), 'tables.filter.FORWARD[0][2]', /twice/);
    refused(withRule(['-j', 'ACCEPT', '-s']), 'tables.filter.FORWARD[0][2]', /needs a value/);
  });
});

describe('canonical rules (as iptables-save 1.8.9 prints them)', () => {
  const cases: [string, string][] = [
    [
      '-p tcp -i eth0 -s 10.0.0.1 -d 10.0.0.0/8 -o eth1 -j ACCEPT',
      '-s 10.0.0.1/32 -d 10.0.0.0/8 -i eth0 -o eth1 -p tcp -j ACCEPT',
    ],
    ['--protocol TCP --destination-port 80 -j DROP', '-p tcp -m tcp --dport 80 -j DROP'],
    [
      '-p tcp -m comment --comment foo --dport 22 -j ACCEPT',
      '-p tcp -m comment --comment foo -m tcp --dport 22 -j ACCEPT',
    ],
    ['-p 6 --dport 22 -j ACCEPT', '-p tcp -m tcp --dport 22 -j ACCEPT'],
    ['-s 10.0.0.7/24 -j RETURN', '-s 10.0.0.0/24 -j RETURN'],
    ['! -s 10.0.0.0/24 -j RETURN', '! -s 10.0.0.0/24 -j RETURN'],
    ['-p icmp --icmp-type 8 -j ACCEPT', '-p icmp -m icmp --icmp-type 8 -j ACCEPT'],
    [
      '-p udp --dport 68 --sport 67:68 -j ACCEPT',
      '-p udp -m udp --sport 67:68 --dport 68 -j ACCEPT',
    ],
    ['-p tcp --syn -j DROP', '-p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j DROP'],
    ['-p tcp ! --dport 22 -j ACCEPT', '-p tcp -m tcp ! --dport 22 -j ACCEPT'],
    ['-p all -s 0.0.0.0/0 -j ACCEPT', '-j ACCEPT'],
    ['! -p tcp -j DROP', '! -p tcp -j DROP'],
    ['--jump ACCEPT --source 1.2.3.4', '-s 1.2.3.4/32 -j ACCEPT'],
    [
      '-p tcp -d 169.254.169.254 --dport 80 -j REDIRECT --to-ports 9697',
      '-d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 9697',
    ],
    ['-m state --state NEW,ESTABLISHED -j ACCEPT', '-m state --state NEW,ESTABLISHED -j ACCEPT'],
  ];
  for (const [given, saved] of cases)
    test(given, () => {
      const once = canonicalRule(given.split(' '), 4);
      assert.equal(once.join(' '), saved);
      assert.deepEqual(canonicalRule(once, 4), once, 'a fixed point');
    });

  test('IPv6: /128, compressed lower case, ipv6-icmp with its icmp6 match', () => {
    const r = '-p icmpv6 --icmpv6-type 128 -s 2001:DB8:0:0::5/64 -j ACCEPT'.split(' ');
    assert.equal(
      canonicalRule(r, 6).join(' '),
      '-s 2001:db8::/64 -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j ACCEPT',
    );
    assert.equal(canonicalRule(['-d', '2001:db8::1', '-j', 'DROP'], 6)[1], '2001:db8::1/128');
  });
});

describe('iptables-save parser', () => {
  test('real save text: tables, policies, user chains, quoted words, foreign rules', () => {
    const saved = parseSave(read('save-mixed.txt'));
    assert.deepEqual([...saved.keys()], ['filter', 'nat']);
    const filter = saved.get('filter');
    assert.equal(filter?.chains.get('INPUT')?.policy, 'ACCEPT');
    assert.equal(filter?.chains.get('foreign-chain')?.policy, '-');
    assert.deepEqual(filter?.chains.get('foreign-chain')?.rules[0]?.slice(-4), [
      ...['--comment', 'ssh "from" admins', '-j', 'ACCEPT'],
    ]);
    assert.deepEqual(saved.get('nat')?.chains.get('POSTROUTING')?.rules, [
      ['-j', 'kumo-POSTROUTING'],
      ['-j', 'kumo-l3-POSTROUTING'],
      ['-s', '10.1.0.0/16', '-j', 'MASQUERADE'],
    ]);
  });

  test('counters (-c) are dropped: the same rules parse equal whatever passed', () => {
    const plain = parseSave(read('save-mixed.txt'));
    const counted = parseSave(read('save-mixed-counters.txt'));
    assert.match(read('save-mixed-counters.txt'), /\[[1-9]\d*:\d+\] -A/);
    assert.deepEqual(counted, plain);
  });

  test('malformed text is an error naming the line', () => {
    assert.throws(() => parseSave('*filter\n-A NOPE -j ACCEPT\nCOMMIT\n'), /line 2: .*NOPE/);
    assert.throws(() => parseSave(':INPUT ACCEPT [0:0]\n'), /line 1: outside a table/);
    assert.throws(() => parseSave('*filter\n:INPUT ACCEPT [0:0]\n'), /not committed/);
    assert.throws(() => parseSave('*filter\n-I INPUT -j X\nCOMMIT\n'), /line 2: expected -A/);
    assert.throws(() => splitWords('-m comment --comment "open', 3), /line 3: unterminated/);
  });

  test('one prefix owns only its chains and its jumps; kumo does not own kumo-l3', () => {
    const saved = parseSave(read('save-mixed.txt'));
    const l3 = ownedState(saved, 4, 'kumo-l3');
    assert.deepEqual(
      [...(l3.tables.get('nat')?.chains.keys() ?? [])],
      ['kumo-l3-POSTROUTING', 'kumo-l3-PREROUTING', 'kumo-l3-snat'],
    );
    assert.deepEqual(Object.fromEntries(l3.tables.get('nat')?.jumps ?? []), {
      PREROUTING: 1,
      POSTROUTING: 1,
    });
    const other = ownedState(saved, 4, 'kumo');
    assert.deepEqual([...other.tables.keys()], ['nat']);
    assert.deepEqual([...(other.tables.get('nat')?.chains.keys() ?? [])], ['kumo-POSTROUTING']);
    assert.equal(isOwnedChain('kumo-l3-snat', 'kumo'), false);
    assert.equal(isOwnedChain('kumo-l3-snat', 'kumo-l3'), true);
    assert.equal(isOwnedChain('foreign-chain', 'kumo-l3'), false);
  });
});

describe('render and plan', () => {
  const empty = { family: 4 as const, prefix: 'kumo-l3', tables: new Map() };

  test('a fresh namespace: every chain declared, jumps inserted at the top', () => {
    golden('fresh.txt', render(validateModel(L3), empty));
  });

  test('an update: changed rules, a stale chain and its jump, a duplicate jump', () => {
    const observed = ownedState(parseSave(read('save-mixed.txt')), 4, 'kumo-l3');
    observed.tables.get('filter')?.jumps.set('FORWARD', 2);
    const next: IptablesModel = {
      ...L3,
      tables: {
        nat: { PREROUTING: L3.tables.nat?.PREROUTING ?? [] },
        filter: { FORWARD: [['-j', 'kumo-l3-fip']], fip: [['-d', '10.0.0.6', '-j', 'ACCEPT']] },
      },
    };
    const text = render(validateModel(next), observed);
    golden('update.txt', text);
    assert.doesNotMatch(text, /foreign|MASQUERADE|kumo-POSTROUTING|:PREROUTING|:INPUT/);
  });

  test('IPv6 renders the same way with ip6tables spellings', () => {
    const v6: IptablesModel = {
      family: 6,
      prefix: 'kumo-l3',
      tables: { filter: { INPUT: [['-p', 'icmpv6', '--icmpv6-type', '128', '-j', 'ACCEPT']] } },
    };
    golden('fresh-v6.txt', render(validateModel(v6), { ...empty, family: 6 }));
  });

  test('plan: no step when the namespace holds the model, whatever the counters', () => {
    for (const file of ['save-mixed.txt', 'save-mixed-counters.txt']) {
      const observed = ownedState(parseSave(read(file)), 4, 'kumo-l3');
      assert.deepEqual(planIptables(validateModel(L3), observed, 'ns1'), []);
      assert.equal(render(validateModel(L3), observed), '');
    }
  });

  test('plan: one iptables-restore --noflush in the namespace, saying why', () => {
    const observed = ownedState(parseSave(read('save-mixed.txt')), 4, 'kumo-l3');
    const model = { ...L3, tables: { ...L3.tables, nat: {} } };
    const steps = planIptables(validateModel(model), observed, 'ns1');
    assert.equal(steps.length, 1);
    assert.deepEqual(steps[0]?.argv, ['iptables-restore', '--noflush']);
    assert.equal(steps[0]?.netns, 'ns1');
    assert.match(steps[0]?.why ?? '', /^nat: kumo-l3-POSTROUTING stale/);
    assert.match(String(steps[0]?.stdin), /^\*nat\n[\s\S]*-X kumo-l3-snat\nCOMMIT\n$/);
    const v6Model: IptablesModel = {
      family: 6,
      prefix: 'kumo-l3',
      tables: { filter: { INPUT: [] } },
    };
    const v6 = planIptables(validateModel(v6Model), { ...empty, family: 6 });
    assert.deepEqual(v6[0]?.argv, ['ip6tables-restore', '--noflush']);
  });

  test('apply: a bad model runs no command at all', async () => {
    const ran: CommandSpec[] = [];
    const runner: CommandRunner = {
      run: async (spec) => {
        ran.push(spec);
        throw new Error(`unexpected command ${spec.argv.join(' ')}`);
      },
    };
    await assert.rejects(applyIptables(runner, withRule(['-j', 'ACCEPT;']), 'ns'), ValidationError);
    assert.deepEqual(ran, []);
  });
});
