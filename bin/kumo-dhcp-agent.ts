#!/usr/bin/env node
import { main } from '../agents/dhcp/main.ts';

await main();
