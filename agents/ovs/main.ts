/** kumo-ovs-agent: the ovs agent daemon (see agent.ts for what it reports and hosts). */
import { runAgentDaemon } from '../run.ts';
import { ovsHooks } from './agent.ts';

export const main = () => runAgentDaemon('ovs', 'kumo-ovs-agent', ovsHooks);
