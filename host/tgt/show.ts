/**
 * The output of `tgtadm --op show --mode target` and `--mode account`, parsed (pure).
 *
 * Invariants: the parser reads only what tgt 1.0.x prints and fails (TgtParseError with the
 * line) on a line that belongs to no target or is not a `Target <tid>: <iqn>` heading, so a
 * format change is seen, not read as "no targets"; inside a target, unknown lines are
 * ignored (tgt prints many LUN properties Kumo does not use). Sessions are tgt's I_T nexus
 * entries: an initiator with a connected session, the address of its first connection.
 * A LUN's size is what tgt shows, whole decimal megabytes (rounded), times 10^6: compare
 * with `sameTgtSize`. Outgoing accounts (`name (outgoing)`) are not listed: Kumo binds
 * incoming CHAP accounts only.
 */

export interface TgtLun {
  lun: number;
  /** tgt's `Size: N MB` × 10^6 (± 0.5 MB of the backing store's size). */
  sizeBytes: number;
  /** `Backing store path`; null for LUN 0 (tgt's controller, path `None`). */
  backingStore: string | null;
}

export interface TgtSession {
  initiator: string;
  address?: string;
}

export interface TgtTarget {
  tid: number;
  iqn: string;
  luns: TgtLun[];
  accounts: string[];
  acl: string[];
  sessions: TgtSession[];
}

export class TgtParseError extends Error {
  constructor(what: string, line: string) {
    super(`tgtadm show: ${what}: ${JSON.stringify(line.slice(0, 200))}`);
    this.name = 'TgtParseError';
  }
}

type Section = 'system' | 'nexus' | 'lun' | 'account' | 'acl' | 'other';

const SECTIONS: Record<string, Section> = {
  'System information:': 'system',
  'I_T nexus information:': 'nexus',
  'LUN information:': 'lun',
  'Account information:': 'account',
  'ACL information:': 'acl',
};

const TARGET = /^Target (\d+): (\S+)$/;
const MB = 1_000_000;

/** Whether tgt's shown LUN size matches a backing store of `bytes` (tgt rounds to MB). */
export const sameTgtSize = (lun: TgtLun, bytes: number) =>
  Math.abs(lun.sizeBytes - bytes) <= MB / 2 + 512;

function lunLine(t: TgtTarget, line: string): void {
  const lun = /^LUN: (\d+)$/.exec(line);
  if (lun) {
    t.luns.push({ lun: Number(lun[1]), sizeBytes: 0, backingStore: null });
    return;
  }
  const last = t.luns.at(-1);
  if (!last) return;
  const size = /^Size: (\d+) MB,/.exec(line);
  if (size) last.sizeBytes = Number(size[1]) * MB;
  const path = /^Backing store path: (.*)$/.exec(line);
  if (path) last.backingStore = path[1] === 'None' || path[1] === '' ? null : (path[1] ?? null);
}

function nexusLine(t: TgtTarget, line: string): void {
  const initiator = /^Initiator: (\S+)/.exec(line);
  if (initiator) {
    t.sessions.push({ initiator: initiator[1] as string });
    return;
  }
  const address = /^IP Address: (\S+)$/.exec(line);
  const last = t.sessions.at(-1);
  if (address && last && last.address === undefined) last.address = address[1] as string;
}

function sectionLine(t: TgtTarget, section: Section, line: string): void {
  if (section === 'lun') lunLine(t, line);
  else if (section === 'nexus') nexusLine(t, line);
  else if (section === 'account' && !line.endsWith(' (outgoing)')) t.accounts.push(line);
  else if (section === 'acl') t.acl.push(line);
}

/** `tgtadm --lld iscsi --op show --mode target`, every target in tid order. */
export function parseTargets(text: string): TgtTarget[] {
  const targets: TgtTarget[] = [];
  let section: Section = 'other';
  for (const raw of text.split('\n')) {
    if (raw.trim() === '') continue;
    const head = TARGET.exec(raw);
    if (head) {
      const tid = Number(head[1]);
      targets.push({ tid, iqn: head[2] as string, luns: [], accounts: [], acl: [], sessions: [] });
      section = 'other';
      continue;
    }
    const t = targets.at(-1);
    if (!t || !raw.startsWith('    ')) throw new TgtParseError('not a target heading', raw);
    const line = raw.trim();
    if (/^ {4}\S/.test(raw)) section = SECTIONS[line] ?? 'other';
    else sectionLine(t, section, line);
  }
  return targets.sort((a, b) => a.tid - b.tid);
}

/** `tgtadm --lld iscsi --op show --mode account`: the account names. */
export function parseAccounts(text: string): string[] {
  const names: string[] = [];
  for (const raw of text.split('\n')) {
    if (raw.trim() === '' || raw === 'Account list:') continue;
    if (!/^ {4}\S+$/.test(raw)) throw new TgtParseError('not an account line', raw);
    names.push(raw.trim());
  }
  return names;
}

/** The lowest tid ≥ 1 no target uses (tgt needs the caller to choose one). */
export function freeTid(targets: readonly Pick<TgtTarget, 'tid'>[]): number {
  const used = new Set(targets.map((t) => t.tid));
  let tid = 1;
  while (used.has(tid)) tid++;
  return tid;
}
