/** kumo-lbaas-agent: the lbaas agent daemon (see agent.ts for what it reports and hosts). */
import { runAgentDaemon } from '../run.ts';
import { lbaasHooks } from './agent.ts';

export const main = () => runAgentDaemon('lbaas', 'kumo-lbaas-agent', lbaasHooks);
