/**
 * A lab host's power cut and return, as seen from outside (l3-lab, lbaas-lab): its links to
 * the rest of the lab go down and its ovs-vswitchd exits (taps stay, with no datapath
 * behind them), together with whatever the caller kills (the host's agents); back, the
 * vswitchd runs again with lab.ts's argv, br-phy gets its tunnel address back and the links
 * come up. ovsdb-server keeps running, as a host's disk keeps its database.
 *
 * Invariant: it only touches the host's own namespace and daemons (lab.ts's paths).
 */
import { join } from 'node:path';
import { waitFor } from './env.ts';
import { vswitchdRuns } from './fence-monitor.ts';
import type { Lab, LabHost } from './lab.ts';

/** `links` down and ovs-vswitchd gone, while `kills` (the host's agents) finish. */
export async function powerOff(
  lab: Lab,
  h: LabHost,
  links: readonly string[],
  kills: readonly Promise<unknown>[] = [],
) {
  await Promise.all([
    ...kills,
    ...links.map((dev) => lab.exec(h.netns, ['ip', 'link', 'set', dev, 'down'])),
  ]);
  await lab.exec(h.netns, ['ovs-appctl', '-t', join(h.dir, 'ovs-vswitchd.ctl'), 'exit']);
  const pidfile = join(h.dir, 'ovs-vswitchd.pid');
  await waitFor('ovs-vswitchd exited', () => !vswitchdRuns(pidfile), 10_000, 50);
}

/** ovs-vswitchd as lab.ts starts it, br-phy's tunnel address back, `links` up. */
export async function powerOn(lab: Lab, h: LabHost, links: readonly string[]) {
  const env = { OVS_RUNDIR: h.dir, OVS_LOGDIR: h.dir, OVS_DBDIR: h.dir };
  await lab.exec(
    h.netns,
    [
      'ovs-vswitchd',
      `unix:${h.dbSocket}`,
      `--pidfile=${join(h.dir, 'ovs-vswitchd.pid')}`,
      `--unixctl=${join(h.dir, 'ovs-vswitchd.ctl')}`,
      `--log-file=${join(h.dir, 'ovs-vswitchd.log')}`,
      '--detach',
    ],
    env,
  );
  await waitFor('br-phy back', () =>
    lab.exec(h.netns, ['ip', 'link', 'show', 'br-phy']).then(
      () => true,
      () => false,
    ),
  );
  await lab.exec(h.netns, ['ip', 'addr', 'replace', `${h.ip}/24`, 'dev', 'br-phy']);
  for (const dev of ['br-phy', ...links]) await lab.exec(h.netns, ['ip', 'link', 'set', dev, 'up']);
}
