/** kumo-l3-agent: the l3 agent daemon (see agent.ts for what it reports and hosts). */
import { runAgentDaemon } from '../run.ts';
import { l3Hooks } from './agent.ts';

export const main = () => runAgentDaemon('l3', 'kumo-l3-agent', l3Hooks);
