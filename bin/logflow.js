#!/usr/bin/env node
// The bin runs the TypeScript sources through tsx so a checkout needs no build step after `npm ci`.
import { register } from 'tsx/esm/api';

register();
await import('../src/app/cli.ts');
