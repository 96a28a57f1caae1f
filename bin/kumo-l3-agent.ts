#!/usr/bin/env node
import { main } from '../agents/l3/main.ts';

await main();
