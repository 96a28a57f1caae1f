#!/usr/bin/env node
import { main } from '../agents/lbaas/main.ts';

await main();
