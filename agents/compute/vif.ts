/**
 * An instance's VIFs on Open vSwitch, in OVSDB's and `ip`'s vocabulary: find the OVS ports
 * of an instance, plug its taps, unplug them.
 *
 * Two modes, from `[ovs] vswitchd_netns`:
 * - `ovs` (production, ovs-vswitchd in our netns): libvirt plugs the tap itself from the
 *   domain's `<virtualport type='openvswitch'>`, with iface-id, attached-mac and vm-uuid;
 *   "plug" only checks that the port is there.
 * - `ethernet` (the lab: ovs-vswitchd and its OVSDB in another netns): libvirt makes a bare
 *   tap in our netns; plug moves it into vswitchd's netns, sets its MTU, brings it up and
 *   adds it to the integration bridge in one OVSDB transaction carrying iface-id,
 *   attached-mac, iface-status=active and vm-uuid.
 *
 * Invariants: a tap that was (re)created since its OVS row was written gets a fresh row
 * (old row removed, vswitchd caught up, new row added), so vswitchd never keeps a handle
 * on a device that is gone; every transaction that changes ports bumps next_cfg and
 * returns only once ovs-vswitchd reports it applied (as `ovs-vsctl` does); unplug removes
 * only rows found by this instance's uuid or tap names.
 */
import type { CommandRunner } from '../../core/exec.ts';
import {
  ipBatch,
  ipCommand,
  linkSetMtu,
  linkSetNetns,
  linkUp,
  listAddrs,
} from '../../host/ip/link.ts';
import { addPortsOps } from '../../host/ovs/ops.ts';
import {
  comment,
  fromMap,
  isUuid,
  map,
  mutate,
  type OvsdbClient,
  type OvsdbOperation,
  type OvsdbRow,
  select,
  set,
  uuid,
} from '../../host/ovs/ovsdb.ts';
import type { ComputeSettings, DesiredNic } from './desired.ts';

const DB = 'Open_vSwitch';
const CFG_TIMEOUT_MS = 10_000;

export interface OvsPortRow {
  /** The Port row's uuid (what a bridge references). */
  port: string;
  name: string;
  ifaceId: string | null;
  vmUuid: string | null;
}

/** Where a tap is: in our netns (just made by libvirt), in vswitchd's, or nowhere. */
export type TapPlace = 'root' | 'vswitchd' | 'missing';

export interface VifDeps {
  runner: CommandRunner;
  ovsdb(): Promise<OvsdbClient>;
  settings: ComputeSettings;
}

const rowsOf = (r: { rows?: OvsdbRow[] } | undefined) => r?.rows ?? [];

/** OVS ports whose Interface carries `vm-uuid=<id>` or is named after one of `taps`. */
export async function findOvsPorts(
  ovsdb: OvsdbClient,
  instanceId: string,
  taps: readonly string[],
): Promise<OvsPortRow[]> {
  const cols = ['name', 'external_ids'];
  const ifaces = await ovsdb.transact(DB, [
    select('Interface', [['external_ids', 'includes', map({ 'vm-uuid': instanceId })]], cols),
    ...taps.map((t) => select('Interface', [['name', '==', t]], cols)),
  ]);
  const byName = new Map<string, Record<string, unknown>>();
  for (const row of ifaces.flatMap(rowsOf)) byName.set(String(row.name), fromMap(row.external_ids));
  if (byName.size === 0) return [];
  const names = [...byName.keys()];
  const ports = await ovsdb.transact(
    DB,
    names.map((n) => select('Port', [['name', '==', n]], ['_uuid', 'name'])),
  );
  return ports.flatMap(rowsOf).flatMap((row) => {
    const id = row._uuid;
    const ids = byName.get(String(row.name)) ?? {};
    if (!isUuid(id)) return [];
    const str = (v: unknown) => (typeof v === 'string' ? v : null);
    return [
      {
        port: id[1],
        name: String(row.name),
        ifaceId: str(ids['iface-id']),
        vmUuid: str(ids['vm-uuid']),
      },
    ];
  });
}

/** Runs `ops` with next_cfg bumped and waits until ovs-vswitchd has applied it. */
async function transactApplied(ovsdb: OvsdbClient, ops: OvsdbOperation[]): Promise<void> {
  const res = await ovsdb.transact(DB, [
    ...ops,
    mutate(DB, [], [['next_cfg', '+=', 1]]),
    select(DB, [], ['next_cfg']),
  ]);
  const want = Number(rowsOf(res.at(-1))[0]?.next_cfg);
  const deadline = Date.now() + CFG_TIMEOUT_MS;
  for (;;) {
    const [cur] = await ovsdb.transact(DB, [select(DB, [], ['cur_cfg'])]);
    const cfg = Number(rowsOf(cur)[0]?.cur_cfg ?? -1);
    if (cfg >= want) return;
    if (Date.now() > deadline)
      throw new Error(`ovs-vswitchd did not apply OVSDB cfg ${want} within ${CFG_TIMEOUT_MS} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function unplugPorts(ovsdb: OvsdbClient, ports: readonly OvsPortRow[]) {
  if (ports.length === 0) return;
  await ovsdb.transact(DB, [
    mutate('Bridge', [], [['ports', 'delete', set(ports.map((p) => uuid(p.port)))]]),
    comment(`kumo: unplug ${ports.map((p) => p.name).join(',')}`),
  ]);
}

/** Where each tap of `nics` is (ethernet mode). */
export async function observeTaps(
  deps: VifDeps,
  nics: readonly DesiredNic[],
): Promise<Record<string, TapPlace>> {
  const out: Record<string, TapPlace> = {};
  for (const n of nics) {
    if ((await listAddrs(deps.runner, undefined, n.tap)) !== null) out[n.tap] = 'root';
    else if ((await listAddrs(deps.runner, deps.settings.vswitchdNetns, n.tap)) !== null)
      out[n.tap] = 'vswitchd';
    else out[n.tap] = 'missing';
  }
  return out;
}

/** Moves a tap libvirt just made into vswitchd's netns; MTU and link up there. */
async function moveTap(deps: VifDeps, nic: DesiredNic, netns: string): Promise<void> {
  await deps.runner.run(ipCommand(linkSetNetns(nic.tap, netns)));
  await deps.runner.run(ipBatch([linkSetMtu(nic.tap, nic.mtu), linkUp(nic.tap)], netns));
}

async function plugEthernet(deps: VifDeps, instanceId: string, nic: DesiredNic, netns: string) {
  const place = (await observeTaps(deps, [nic]))[nic.tap];
  if (place === 'missing') throw new Error(`tap ${nic.tap} does not exist: is the guest running?`);
  const ovsdb = await deps.ovsdb();
  const rows = (await findOvsPorts(ovsdb, instanceId, [nic.tap])).filter((r) => r.name === nic.tap);
  const current = rows.length === 1 && rows[0]?.ifaceId === nic.portId;
  if (place === 'vswitchd' && current) return;
  if (place === 'root') await moveTap(deps, nic, netns);
  if (rows.length > 0)
    await transactApplied(ovsdb, [
      mutate('Bridge', [], [['ports', 'delete', set(rows.map((r) => uuid(r.port)))]]),
    ]);
  const externalIds = {
    'iface-id': nic.portId,
    'attached-mac': nic.mac,
    'iface-status': 'active',
    'vm-uuid': instanceId,
  };
  await transactApplied(
    ovsdb,
    addPortsOps(deps.settings.intBridge, [{ name: nic.tap, interfaceExternalIds: externalIds }]),
  );
}

async function checkOvs(deps: VifDeps, instanceId: string, nic: DesiredNic) {
  const rows = await findOvsPorts(await deps.ovsdb(), instanceId, [nic.tap]);
  if (!rows.some((r) => r.name === nic.tap && r.ifaceId === nic.portId))
    throw new Error(
      `OVS port ${nic.tap} with iface-id ${nic.portId} is missing: libvirt did not plug it into ${deps.settings.intBridge}`,
    );
}

/** Plugs (ethernet) or checks (ovs) every NIC of a started domain. */
export async function plugNics(deps: VifDeps, instanceId: string, nics: readonly DesiredNic[]) {
  const netns = deps.settings.vswitchdNetns;
  for (const nic of nics) {
    if (netns) await plugEthernet(deps, instanceId, nic, netns);
    else await checkOvs(deps, instanceId, nic);
  }
}
