/**
 * tgtadm command lines as data (CommandSpec), for plans whose steps an executor runs and for
 * tgtadm.ts, which runs them directly.
 *
 * Invariants: every builder validates all its arguments (args.ts) before building anything,
 * so a refused value never becomes argv; `-C <port>` is given only for a non-zero control
 * port (0 is tgtd's default socket); a CHAP secret is on tgtadm's command line, as tgtadm
 * takes it no other way (tgtadm.ts `newAccount` masks it in the CommandError it raises).
 */
import type { CommandSpec } from '../../core/exec.ts';
import {
  checkBackingStore,
  checkControlPort,
  checkInitiator,
  checkLun,
  checkSecret,
  checkTargetIqn,
  checkTid,
  checkUser,
} from './args.ts';

const TIMEOUT_MS = 15_000;

function tgtadm(port: number, mode: string, op: string, ...rest: string[]): CommandSpec {
  const control = checkControlPort(port) === 0 ? [] : ['-C', String(port)];
  const lld = mode === 'sys' ? [] : ['--lld', 'iscsi'];
  return {
    argv: ['tgtadm', ...control, ...lld, '--mode', mode, '--op', op, ...rest],
    timeoutMs: TIMEOUT_MS,
  };
}

const tidArg = (tid: number) => ['--tid', String(checkTid(tid))];

export function newTargetCommand(port: number, tid: number, iqn: string): CommandSpec {
  return tgtadm(port, 'target', 'new', ...tidArg(tid), '--targetname', checkTargetIqn(iqn));
}

/** `force`: delete even with connected sessions (tgt drops them). */
export function deleteTargetCommand(port: number, tid: number, force: boolean): CommandSpec {
  return tgtadm(port, 'target', 'delete', ...(force ? ['--force'] : []), ...tidArg(tid));
}

export function newLunCommand(port: number, tid: number, lun: number, path: string): CommandSpec {
  const args = ['--lun', String(checkLun(lun)), '--backing-store', checkBackingStore(path)];
  return tgtadm(port, 'logicalunit', 'new', ...tidArg(tid), ...args);
}

export function deleteLunCommand(port: number, tid: number, lun: number): CommandSpec {
  return tgtadm(port, 'logicalunit', 'delete', ...tidArg(tid), '--lun', String(checkLun(lun)));
}

export function newAccountCommand(port: number, user: string, secret: string): CommandSpec {
  const u = checkUser(user);
  return tgtadm(port, 'account', 'new', '--user', u, '--password', checkSecret(secret));
}

/** Deleting an account also unbinds it from every target. */
export function deleteAccountCommand(port: number, user: string): CommandSpec {
  return tgtadm(port, 'account', 'delete', '--user', checkUser(user));
}

export function bindAccountCommand(port: number, tid: number, user: string): CommandSpec {
  return tgtadm(port, 'account', 'bind', ...tidArg(tid), '--user', checkUser(user));
}

export function unbindAccountCommand(port: number, tid: number, user: string): CommandSpec {
  return tgtadm(port, 'account', 'unbind', ...tidArg(tid), '--user', checkUser(user));
}

export function bindInitiatorCommand(port: number, tid: number, name: string): CommandSpec {
  return tgtadm(port, 'target', 'bind', ...tidArg(tid), '--initiator-name', checkInitiator(name));
}

export function unbindInitiatorCommand(port: number, tid: number, name: string): CommandSpec {
  const n = checkInitiator(name);
  return tgtadm(port, 'target', 'unbind', ...tidArg(tid), '--initiator-name', n);
}

export const showTargetsCommand = (port: number) => tgtadm(port, 'target', 'show');
export const showAccountsCommand = (port: number) => tgtadm(port, 'account', 'show');
/** Answers once tgtd listens on its control socket. */
export const showSystemCommand = (port: number) => tgtadm(port, 'sys', 'show');
/** Stopping tgtd: refuse new logins, then (no target left) delete the system: tgtd exits. */
export const offlineCommand = (port: number) =>
  tgtadm(port, 'sys', 'update', '--name', 'State', '--value', 'offline');
export const deleteSystemCommand = (port: number) => tgtadm(port, 'sys', 'delete');
