/**
 * A tgtd of a test's own (HOST-LAB.md: the userspace iSCSI target), and the libiscsi
 * initiator tools that look at it from outside: `tgtadm --op show` parsed into targets with
 * their LUN backing files, CHAP accounts and initiator ACLs, and `iscsi-inq` logins with
 * chosen initiator names and credentials.
 *
 * Invariants: the daemon listens on 127.0.0.1 only, on a free port, with a control port
 * (`tgtd -C N`) whose socket no other tgtd holds, so parallel labs and helpers never share
 * one; only the process this helper spawned is ever signalled, and `stop()` removes its
 * control socket files. Restarting keeps both ports (the volume agent's config names them).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseTargets as parseShow } from '../../host/tgt/show.ts';
import { freePort, type RunResult, runCommand } from './cluster.ts';
import { waitFor } from './env.ts';

export interface TgtTarget {
  tid: number;
  iqn: string;
  /** Backing store paths of the LUNs other than the controller (LUN 0). */
  backing: string[];
  accounts: string[];
  acl: string[];
  /** Connected I_T nexuses (sessions). */
  sessions: number;
}

export interface Tgtd {
  ctl: number;
  port: number;
  /** `127.0.0.1:<port>`, as the volume agent reports target_portal. */
  portal: string;
  logPath: string;
  /** The running daemon's pid (for a synchronous last-resort kill at exit). */
  readonly pid: number | undefined;
  tgtadm(args: string[]): Promise<RunResult>;
  targets(): Promise<TgtTarget[]>;
  /** SIGKILL (a crash); the ports stay reserved for `start()`. */
  kill(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

const SOCKET_DIR = '/var/run/tgtd';

/** A control port whose socket no tgtd on this machine has (tgtd takes up to 32767). */
function freeControlPort(): number {
  for (;;) {
    const n = 1000 + Math.floor(Math.random() * 30_000);
    if (!existsSync(join(SOCKET_DIR, `socket.${n}`))) return n;
  }
}

/** host/tgt's parse of `tgtadm --op show --mode target`, in the lab's terms. */
export function parseTargets(text: string): TgtTarget[] {
  return parseShow(text).map((t) => ({
    tid: t.tid,
    iqn: t.iqn,
    backing: t.luns.flatMap((l) => (l.lun !== 0 && l.backingStore ? [l.backingStore] : [])),
    accounts: t.accounts,
    acl: t.acl,
    sessions: t.sessions.length,
  }));
}

export async function startTgtd(dir: string): Promise<Tgtd> {
  const ctl = freeControlPort();
  const port = await freePort();
  const logPath = join(dir, 'tgtd.log');
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const tgtadm = (args: string[]) =>
    runCommand(['tgtadm', '-C', String(ctl), '--lld', 'iscsi', ...args], {}, 15_000);
  const start = async () => {
    const out = createWriteStream(logPath, { flags: 'a' });
    const proc = spawn('tgtd', ['-f', '-C', String(ctl), '--iscsi', `portal=127.0.0.1:${port}`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    proc.stdout?.pipe(out);
    proc.stderr?.pipe(out);
    child = proc;
    exited = new Promise((r) => proc.on('exit', () => r()));
    await waitFor(
      `tgtd -C ${ctl} to answer`,
      async () => {
        if (proc.exitCode !== null) throw new Error(`tgtd exited ${proc.exitCode}; see ${logPath}`);
        return (await tgtadm(['--op', 'show', '--mode', 'sys'])).code === 0;
      },
      15_000,
      100,
    );
  };
  const kill = async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  };
  await start();
  return {
    ctl,
    port,
    portal: `127.0.0.1:${port}`,
    logPath,
    get pid() {
      return child?.exitCode === null && child.signalCode === null ? child.pid : undefined;
    },
    tgtadm,
    targets: async () => {
      const r = await tgtadm(['--op', 'show', '--mode', 'target']);
      if (r.code !== 0) throw new Error(`tgtadm show: ${r.stderr}`);
      return parseTargets(r.stdout);
    },
    kill,
    start,
    stop: async () => {
      await kill();
      for (const f of [`socket.${ctl}`, `socket.${ctl}.lock`])
        rmSync(join(SOCKET_DIR, f), { force: true });
    },
  };
}

export interface IscsiLogin {
  portal: string;
  iqn: string;
  initiator: string;
  user: string;
  secret: string;
}

/** `iscsi-inq` of LUN 1 with these credentials and initiator name: exit code and output. */
export function iscsiInq(l: IscsiLogin): Promise<RunResult> {
  const url = `iscsi://${l.user}%${l.secret}@${l.portal}/${l.iqn}/1`;
  return runCommand(['iscsi-inq', '-i', l.initiator, url], {}, 20_000);
}
