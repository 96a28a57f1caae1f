/** kumo-compute-agent: the compute agent daemon (see agent.ts for what it reports and hosts). */
import { runAgentDaemon } from '../run.ts';
import { computeHooks } from './agent.ts';

export const main = () => runAgentDaemon('compute', 'kumo-compute-agent', computeHooks);
