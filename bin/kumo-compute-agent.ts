#!/usr/bin/env node
import { main } from '../agents/compute/main.ts';

await main();
