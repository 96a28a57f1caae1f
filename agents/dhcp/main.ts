/** kumo-dhcp-agent: the dhcp agent daemon (see agent.ts for what it reports and hosts). */
import { runAgentDaemon } from '../run.ts';
import { dhcpHooks } from './agent.ts';

export const main = () => runAgentDaemon('dhcp', 'kumo-dhcp-agent', dhcpHooks);
