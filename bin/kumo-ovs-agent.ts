#!/usr/bin/env node
import { main } from '../agents/ovs/main.ts';

await main();
