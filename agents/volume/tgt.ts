/**
 * tgtd as the volume agent uses it: the targets `tgtadm --op show` lists (tid, iqn, LUNs
 * with their backing stores, bound accounts, ACL, I_T nexuses), its CHAP accounts, and
 * every change made inside one lock.
 *
 * Invariants: tgtd is reached only through `tgtadm -C <tgt_control_port> --lld iscsi`
 * with argv built here from values the contract validated (iqns, CHAP [A-Za-z0-9], paths
 * derived from uuids) and integers; changes run one at a time (`exclusive`), so a tid
 * picked by `freeTid` inside the lock is still free when the target is made; reads (show,
 * accounts) need no lock; tgtadm's failures are its CommandError (stderr says why).
 */
import type { CommandRunner } from '../../core/exec.ts';

export interface TgtTargetView {
  tid: number;
  iqn: string;
  luns: { lun: number; backing: string | null }[];
  accounts: string[];
  acl: string[];
  sessions: number;
}

export interface TgtOps {
  freeTid(): Promise<number>;
  newTarget(tid: number, iqn: string): Promise<void>;
  deleteTarget(tid: number, force: boolean): Promise<void>;
  newLun(tid: number, lun: number, backing: string): Promise<void>;
  newAccount(user: string, secret: string): Promise<void>;
  deleteAccount(user: string): Promise<void>;
  bindAccount(tid: number, user: string): Promise<void>;
  unbindAccount(tid: number, user: string): Promise<void>;
  bindInitiator(tid: number, initiator: string): Promise<void>;
  unbindInitiator(tid: number, initiator: string): Promise<void>;
}

export interface Tgt {
  show(): Promise<TgtTargetView[]>;
  accounts(): Promise<string[]>;
  exclusive<T>(fn: (ops: TgtOps) => Promise<T>): Promise<T>;
}

/** A lock: `fn`s run one after another, in call order, whatever each one's outcome. */
export function serial() {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(fn: () => Promise<T>): Promise<T> => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => {});
    return run;
  };
}

type Section = 'none' | 'nexus' | 'lun' | 'accounts' | 'acl';

const SECTIONS: [RegExp, Section][] = [
  [/^I_T nexus information:$/, 'nexus'],
  [/^LUN information:$/, 'lun'],
  [/^Account information:$/, 'accounts'],
  [/^ACL information:$/, 'acl'],
  [/^System information:$/, 'none'],
];

function parseLun(t: TgtTargetView, line: string): void {
  const lun = /^LUN: (\d+)$/.exec(line);
  if (lun) t.luns.push({ lun: Number(lun[1]), backing: null });
  const path = /^Backing store path: (.+)$/.exec(line)?.[1];
  const last = t.luns.at(-1);
  if (path !== undefined && last) last.backing = path === 'None' ? null : path;
}

function parseLine(t: TgtTargetView, section: Section, line: string): void {
  if (section === 'nexus' && /^I_T nexus: \d+$/.test(line)) t.sessions += 1;
  else if (section === 'lun') parseLun(t, line);
  else if (section === 'accounts') t.accounts.push(line.replace(/ \(outgoing\)$/, ''));
  else if (section === 'acl') t.acl.push(line);
}

/** `tgtadm --op show --mode target`, parsed. Pure. */
export function parseTargets(stdout: string): TgtTargetView[] {
  const targets: TgtTargetView[] = [];
  let section: Section = 'none';
  for (const raw of stdout.split('\n')) {
    const line = raw.trim();
    const head = /^Target (\d+): (\S+)$/.exec(raw);
    if (head) {
      targets.push({
        tid: Number(head[1]),
        iqn: head[2] as string,
        luns: [],
        accounts: [],
        acl: [],
        sessions: 0,
      });
      section = 'none';
      continue;
    }
    const t = targets.at(-1);
    if (!t || line === '') continue;
    const next = SECTIONS.find(([re]) => re.test(line));
    if (next) section = next[1];
    else parseLine(t, section, line);
  }
  return targets;
}

/** `tgtadm --op show --mode account`, parsed. Pure. */
export const parseAccounts = (stdout: string): string[] =>
  stdout
    .split('\n')
    .slice(1)
    .map((l) => l.trim())
    .filter((l) => l !== '');

/** The lowest tid not in use (tids start at 1). Pure. */
export function lowestFreeTid(targets: readonly { tid: number }[]): number {
  const used = new Set(targets.map((t) => t.tid));
  let tid = 1;
  while (used.has(tid)) tid += 1;
  return tid;
}

export function createTgt(runner: CommandRunner, port: number): Tgt {
  const run = (args: (string | number)[]) =>
    runner.run({
      argv: ['tgtadm', '-C', String(port), '--lld', 'iscsi', ...args.map(String)],
      timeoutMs: 30_000,
    });
  const show = async () => parseTargets((await run(['--op', 'show', '--mode', 'target'])).stdout);
  const done = async (args: (string | number)[]) => void (await run(args));
  const ops: TgtOps = {
    freeTid: async () => lowestFreeTid(await show()),
    newTarget: (tid, iqn) => done(['--op', 'new', '--mode', 'target', '--tid', tid, '-T', iqn]),
    deleteTarget: (tid, force) =>
      done(['--op', 'delete', ...(force ? ['--force'] : []), '--mode', 'target', '--tid', tid]),
    newLun: (tid, lun, backing) =>
      done(['--op', 'new', '--mode', 'logicalunit', '--tid', tid, '--lun', lun, '-b', backing]),
    newAccount: (user, secret) =>
      done(['--op', 'new', '--mode', 'account', '--user', user, '--password', secret]),
    deleteAccount: (user) => done(['--op', 'delete', '--mode', 'account', '--user', user]),
    bindAccount: (tid, user) =>
      done(['--op', 'bind', '--mode', 'account', '--tid', tid, '--user', user]),
    unbindAccount: (tid, user) =>
      done(['--op', 'unbind', '--mode', 'account', '--tid', tid, '--user', user]),
    bindInitiator: (tid, name) =>
      done(['--op', 'bind', '--mode', 'target', '--tid', tid, '--initiator-name', name]),
    unbindInitiator: (tid, name) =>
      done(['--op', 'unbind', '--mode', 'target', '--tid', tid, '--initiator-name', name]),
  };
  const lock = serial();
  return {
    show,
    accounts: async () => parseAccounts((await run(['--op', 'show', '--mode', 'account'])).stdout),
    exclusive: (fn) => lock(() => fn(ops)),
  };
}
