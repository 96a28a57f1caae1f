import { agentSuite } from './agents.suite.ts';

agentSuite('postgres');
