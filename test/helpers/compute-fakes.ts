/**
 * Small fakes for agent-level tests of the compute apply path (ARCHITECTURE §9): a libvirt
 * client holding domains in memory, and an OVSDB client holding Open vSwitch ports in
 * memory. Both are passed through the agent's interfaces (no module patching); the real
 * tools are covered by test/integration (libvirt.test, ovsdb.test, compute-agent.test).
 *
 * Invariants: the fake libvirt answers like libvirtd for what the agent calls (a missing
 * domain is VIR_ERR_NO_DOMAIN, `fail` makes a named call throw), and records each call;
 * the fake OVSDB applies the transactions the agent builds (inserted ports appear on the
 * bridge they were added to, deleted ones go) and records every transaction.
 */
import type { InstanceImage } from '../../contracts/instances.ts';
import {
  type Domain,
  DomainCreateFlags,
  DomainState,
  type LibvirtClient,
  LibvirtError,
  VirErrorNumber,
} from '../../host/libvirt/client.ts';
import {
  fromMap,
  fromSet,
  isUuid,
  map,
  type OvsdbClient,
  type OvsdbOperation,
  type OvsdbOpResult,
  type OvsdbRow,
  type OvsdbValue,
} from '../../host/ovs/ovsdb.ts';

interface FakeDomain {
  dom: Domain;
  state: number;
  xml: string;
  managedSave: boolean;
}

export const libvirtError = (code: number, message: string) =>
  new LibvirtError('REMOTE_PROC_TEST', {
    code,
    domain: 10,
    message,
    level: 2,
    str1: null,
    str2: null,
    str3: null,
    int1: 0,
    int2: 0,
  });

export interface FakeLibvirt {
  client: LibvirtClient;
  domains: Map<string, FakeDomain>;
  calls: string[];
  /** Errors to throw from the named call (once each). */
  fail: Map<string, Error>;
}

export function fakeLibvirt(): FakeLibvirt {
  const domains = new Map<string, FakeDomain>();
  const calls: string[] = [];
  const fail = new Map<string, Error>();
  const call = (name: string, uuid: string, change?: (d: FakeDomain) => void) => {
    const e = fail.get(name);
    fail.delete(name);
    if (e) throw e;
    if (!READS.has(name)) calls.push(name);
    const d = domains.get(uuid);
    if (!d) throw libvirtError(VirErrorNumber.VIR_ERR_NO_DOMAIN, `no domain with uuid ${uuid}`);
    change?.(d);
    return d;
  };
  const client = {
    lookupByUuid: async (uuid: string) => call('lookupByUuid', uuid).dom,
    getState: async (dom: Domain) => ({ state: call('getState', dom.uuid).state, reason: 0 }),
    hasManagedSaveImage: async (dom: Domain) => call('hasManagedSaveImage', dom.uuid).managedSave,
    getXmlDesc: async (dom: Domain) => call('getXmlDesc', dom.uuid).xml,
    defineXml: async (xml: string) => define(domains, calls, fail, xml),
    ...writes(call, domains),
  };
  return { client: client as unknown as LibvirtClient, domains, calls, fail };
}

const READS = new Set(['lookupByUuid', 'getState', 'getXmlDesc', 'hasManagedSaveImage']);

function define(
  domains: Map<string, FakeDomain>,
  calls: string[],
  fail: Map<string, Error>,
  xml: string,
): Domain {
  const e = fail.get('defineXml');
  fail.delete('defineXml');
  if (e) throw e;
  calls.push('defineXml');
  const uuid = /<uuid>([^<]+)<\/uuid>/.exec(xml)?.[1] as string;
  const name = /<name>([^<]+)<\/name>/.exec(xml)?.[1] as string;
  const d = domains.get(uuid);
  const dom = d?.dom ?? { name, uuid, id: -1 };
  domains.set(uuid, { dom, state: d?.state ?? DomainState.SHUTOFF, xml, managedSave: false });
  return dom;
}

type Call = (name: string, uuid: string, change?: (d: FakeDomain) => void) => FakeDomain;

/** The state-changing calls, as libvirtd makes them. */
function writes(call: Call, domains: Map<string, FakeDomain>) {
  const to = (state: number) => (d: FakeDomain) => {
    d.state = state;
    d.dom = { ...d.dom, id: state === DomainState.SHUTOFF ? -1 : 5 };
  };
  const S = DomainState;
  return {
    create: async (dom: Domain, flags = 0) =>
      call('create', dom.uuid, to(flags & DomainCreateFlags.START_PAUSED ? S.PAUSED : S.RUNNING))
        .dom,
    resume: async (dom: Domain) => void call('resume', dom.uuid, to(S.RUNNING)),
    suspend: async (dom: Domain) => void call('suspend', dom.uuid, to(S.PAUSED)),
    destroy: async (dom: Domain) => void call('destroy', dom.uuid, to(S.SHUTOFF)),
    shutdown: async (dom: Domain) => void call('shutdown', dom.uuid, to(S.SHUTOFF)),
    managedSave: async (dom: Domain) =>
      void call('managedSave', dom.uuid, (d) => {
        to(S.SHUTOFF)(d);
        d.managedSave = true;
      }),
    managedSaveRemove: async (dom: Domain) =>
      void call('managedSaveRemove', dom.uuid, (d) => {
        d.managedSave = false;
      }),
    undefine: async (dom: Domain) =>
      void call('undefine', dom.uuid, () => domains.delete(dom.uuid)),
  };
}

export interface FakePort {
  uuid: string;
  name: string;
  bridge: string;
  ids: Record<string, string>;
}

export interface FakeOvsdb {
  client: OvsdbClient;
  ports: FakePort[];
  /** Every transaction's ops, in order. */
  transactions: OvsdbOperation[][];
}

type Where = [string, string, unknown][];

function matches(p: FakePort, where: Where): boolean {
  return where.every(([col, fn, value]) => {
    if (col === 'name' && fn === '==') return p.name === value;
    if (col === 'external_ids' && fn === 'includes')
      return Object.entries(fromMap(value as OvsdbValue)).every(([k, v]) => p.ids[k] === v);
    return false;
  });
}

/** Applies one transaction to `ports`; returns its results. */
function transact(ports: FakePort[], cfg: { next: number }, ops: OvsdbOperation[]) {
  const ifaces: Record<string, Record<string, string>> = {};
  const results: OvsdbOpResult[] = [];
  for (const op of ops) {
    if (op.op === 'select')
      results.push({ rows: selectRows(ports, cfg, op.table, op.where as Where) });
    else if (op.op === 'insert' && op.table === 'Interface')
      ifaces[String(op.row.name)] = fromMap(op.row.external_ids) as Record<string, string>;
    else if (op.op === 'mutate') mutateRows(ports, cfg, op, ifaces);
    results.push(...(op.op === 'select' ? [] : [{}]));
  }
  return results;
}

function selectRows(ports: FakePort[], cfg: { next: number }, table: string, where: Where) {
  const hit = ports.filter((p) => matches(p, where));
  switch (table) {
    case 'Open_vSwitch':
      return [{ next_cfg: cfg.next, cur_cfg: cfg.next }];
    case 'Bridge': {
      const names = [...new Set(ports.map((p) => p.bridge))];
      return names.map((name) => ({
        name,
        ports: ['set', ports.filter((p) => p.bridge === name).map((p) => ['uuid', p.uuid])],
      })) as OvsdbRow[];
    }
    case 'Interface':
      return hit.map((p) => ({ name: p.name, external_ids: map(p.ids) }));
    default:
      return hit.map((p) => ({ _uuid: ['uuid', p.uuid], name: p.name })) as OvsdbRow[];
  }
}

function mutateRows(
  ports: FakePort[],
  cfg: { next: number },
  op: Extract<OvsdbOperation, { op: 'mutate' }>,
  ifaces: Record<string, Record<string, string>>,
) {
  if (op.table === 'Open_vSwitch') {
    cfg.next += 1;
    return;
  }
  const bridge = String((op.where[0] as [string, string, unknown])[2]);
  const [, mutator, value] = op.mutations[0] as [string, string, unknown];
  if (mutator === 'delete') {
    const gone = new Set(fromSet(value as OvsdbValue).flatMap((u) => (isUuid(u) ? [u[1]] : [])));
    for (let i = ports.length - 1; i >= 0; i--)
      if (gone.has((ports[i] as FakePort).uuid) && ports[i]?.bridge === bridge) ports.splice(i, 1);
    return;
  }
  for (const [name, ids] of Object.entries(ifaces))
    ports.push({ uuid: `uuid-${name}-${ports.length}`, name, bridge, ids });
}

export function fakeOvsdb(): FakeOvsdb {
  const ports: FakePort[] = [];
  const transactions: OvsdbOperation[][] = [];
  const cfg = { next: 0 };
  const client = {
    async transact(_db: string, ops: OvsdbOperation[]) {
      transactions.push(ops);
      return transact(ports, cfg, ops);
    },
  };
  return { client: client as unknown as OvsdbClient, ports, transactions };
}

/** A cached-image record as get_instance lists it (the checksums are never checked here). */
export const image = (id: string, disk_format: InstanceImage['disk_format']): InstanceImage => ({
  id,
  checksum: '0'.repeat(32),
  os_hash_algo: 'sha512',
  os_hash_value: '0'.repeat(128),
  size: 1024,
  disk_format,
});
export const KERNEL = image('11111111-1111-4111-8111-111111111111', 'aki');
export const RAMDISK = image('22222222-2222-4222-8222-222222222222', 'ari');
export const MACHINE = image('33333333-3333-4333-8333-333333333333', 'ami');
