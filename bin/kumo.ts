#!/usr/bin/env node
/**
 * The `kumo` CLI entry point.
 *
 * Invariant: all behaviour lives in cli/main.ts; this file only maps its result to the exit code.
 */
import { main } from '../cli/main.ts';

process.exitCode = await main(process.argv.slice(2));
