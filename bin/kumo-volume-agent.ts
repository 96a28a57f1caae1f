#!/usr/bin/env node
import { main } from '../agents/volume/main.ts';

await main();
