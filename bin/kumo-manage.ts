#!/usr/bin/env node
/**
 * The `kumo-manage` entry point (bootstrap, token-keys), as keystone-manage.
 *
 * Invariant: all behaviour lives in api/identity/manage.ts; this file only maps its result
 * to the exit code.
 */
import { manageMain } from '../api/identity/manage.ts';

process.exitCode = await manageMain(process.argv.slice(2), process);
