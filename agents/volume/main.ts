/** kumo-volume-agent: the volume agent daemon (see agent.ts for what it reports and hosts). */
import { runAgentDaemon } from '../run.ts';
import { volumeHooks } from './agent.ts';

export const main = () => runAgentDaemon('volume', 'kumo-volume-agent', volumeHooks);
