#!/usr/bin/env node
// Runs the compiled JavaScript in dist/, rebuilt first when src/ changed since the last build (a `git pull`, an edit),
// so a checkout never runs code older than its sources; bin/build.js says how.
import { ensureBuilt } from './build.js';

try {
  ensureBuilt();
} catch (error) {
  console.error(`logflow: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}
await import('../dist/app/cli.js');
