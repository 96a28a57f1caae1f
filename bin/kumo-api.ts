#!/usr/bin/env node
import { main } from '../api/main.ts';

await main();
