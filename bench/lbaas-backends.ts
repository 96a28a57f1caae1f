/**
 * The LBaaS benches' members: one haproxy in a namespace listening on `count` consecutive
 * ports of one address (`bind ADDR:FIRST-LAST`) that answers every request itself with
 * `m<port>` (`http-request return … lf-string`), so 1,000 members cost one process and one
 * address, and the body says which member answered.
 *
 * Invariant: the config holds only a canonical IP and numbers checked here; the haproxy is
 * found by its pid file and `-f <config>` (host/haproxy/daemon.ts), and stop() ends only it.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCommandRunner } from '../core/exec.ts';
import { checkIp, checkPort } from '../host/haproxy/config.ts';
import { haproxyExpected, startCommand } from '../host/haproxy/daemon.ts';
import { startDaemon, stopByPidfile } from '../host/process/daemon.ts';

export interface BackendSet {
  address: string;
  ports: number[];
  /** The body a member answers, and a pattern matching any member's. */
  body(port: number): string;
  readonly anyBody: string;
  stop(): Promise<void>;
}

export function backendConfig(address: string, first: number, count: number): string {
  const ip = checkIp(address, 'address');
  const last = checkPort(first + count - 1, 'last port');
  return [
    'global',
    `  maxconn 4000`,
    '  nbthread 1',
    'defaults',
    '  mode http',
    '  timeout connect 5s',
    '  timeout client 30s',
    '  timeout server 30s',
    'frontend members',
    `  bind ${ip}:${checkPort(first, 'first port')}-${last}`,
    '  http-request return status 200 content-type text/plain lf-string "m%[dst_port]"',
    '',
  ].join('\n');
}

/** Starts the member set in `netns`; its files go in `dir`. */
export async function startBackends(opts: {
  netns: string;
  address: string;
  firstPort: number;
  count: number;
  dir: string;
}): Promise<BackendSet> {
  const paths = { config: join(opts.dir, 'members.cfg'), pidfile: join(opts.dir, 'members.pid') };
  writeFileSync(paths.config, backendConfig(opts.address, opts.firstPort, opts.count));
  await startDaemon(createCommandRunner(), startCommand(paths, opts.netns), {
    pidfile: paths.pidfile,
    expected: haproxyExpected(paths),
  });
  return {
    address: opts.address,
    ports: Array.from({ length: opts.count }, (_, i) => opts.firstPort + i),
    body: (port) => `m${port}`,
    anyBody: '^m\\d+$',
    async stop() {
      await stopByPidfile(paths.pidfile, haproxyExpected(paths), { graceMs: 1000 });
    },
  };
}
