/**
 * FakeOvsdb: an OvsdbClient over rows a test scripts, for agent tests of what an agent
 * asks OVSDB (ARCHITECTURE §9: an interface passed in, no module patching). Every real
 * OVSDB use has its own test against ovsdb-server; this only checks the agent's side.
 *
 * Invariants: every transaction is recorded in order; `select` answers from the scripted
 * rows (conditions `==` only, anything else throws); next_cfg bumps are counted and a
 * `wait` for cur_cfg succeeds at once (ovs-vswitchd applies instantly); other writes are
 * recorded but change no row, so what a test observes is exactly what it scripted.
 */
import { randomUUID } from 'node:crypto';
import type {
  OvsdbClient,
  OvsdbCondition,
  OvsdbOperation,
  OvsdbOpResult,
  OvsdbRow,
} from '../../host/ovs/ovsdb.ts';

export class FakeOvsdb implements OvsdbClient {
  readonly transactions: OvsdbOperation[][] = [];
  private readonly tables: Record<string, OvsdbRow[]> = { Bridge: [], Port: [], Interface: [] };
  private cfg = 0;

  /** Scripts a port `name` on `bridge` with its Interface's external_ids; returns its uuid. */
  addPort(bridge: string, name: string, externalIds: Record<string, string> = {}): string {
    const uuid = randomUUID();
    this.tables.Interface?.push({ name, external_ids: ['map', Object.entries(externalIds)] });
    this.tables.Port?.push({ _uuid: ['uuid', uuid], name });
    let br = this.tables.Bridge?.find((b) => b.name === bridge);
    if (!br) {
      br = { name: bridge, ports: ['set', []] };
      this.tables.Bridge?.push(br);
    }
    (br.ports as ['set', ['uuid', string][]])[1].push(['uuid', uuid]);
    return uuid;
  }

  /** Transactions that wrote something (not only selects and waits). */
  writes(): OvsdbOperation[][] {
    return this.transactions.filter((t) => t.some((op) => !['select', 'wait'].includes(op.op)));
  }

  async transact(_db: string, ops: OvsdbOperation[]): Promise<OvsdbOpResult[]> {
    this.transactions.push(ops);
    return ops.map((op) => this.answer(op));
  }

  private answer(op: OvsdbOperation): OvsdbOpResult {
    if (op.op === 'mutate' && op.table === 'Open_vSwitch') this.cfg++;
    if (op.op !== 'select') return op.op === 'insert' ? { uuid: ['uuid', randomUUID()] } : {};
    if (op.table === 'Open_vSwitch') return { rows: [{ next_cfg: this.cfg, cur_cfg: this.cfg }] };
    const rows = (this.tables[op.table] ?? []).filter((r) => op.where.every((c) => holds(r, c)));
    return { rows };
  }

  monitor(): never {
    throw new Error('FakeOvsdb: monitor is not scripted');
  }
  async monitorCancel(): Promise<void> {}
  onUpdate = () => () => {};
  onReconnected = () => () => {};
  onDisconnected = () => () => {};
  echo = async () => 0;
  listDbs = async () => ['Open_vSwitch'];
  getSchema(): never {
    throw new Error('FakeOvsdb: getSchema is not scripted');
  }
  isConnected = () => true;
  async close(): Promise<void> {}
}

function holds(row: OvsdbRow, [column, fn, value]: OvsdbCondition): boolean {
  if (fn !== '==') throw new Error(`FakeOvsdb: condition ${fn} is not scripted`);
  return JSON.stringify(row[column]) === JSON.stringify(value);
}
