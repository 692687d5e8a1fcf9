import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CONFIG_VARIABLES, loadConfig } from '../src/core/config.ts';

describe('.env.example', () => {
  const text = readFileSync(new URL('../.env.example', import.meta.url), 'utf8');
  const documented = [...text.matchAll(/^(LOGFLOW_[A-Z0-9_]+)=/gm)].map((m) => m[1]);

  it('documents exactly the variables the config reads', () => {
    expect([...documented].sort()).toEqual([...CONFIG_VARIABLES].sort());
  });

  it('is itself a valid configuration', () => {
    const env = Object.fromEntries([...text.matchAll(/^(LOGFLOW_[A-Z0-9_]+)=(.*)$/gm)].map((m) => [m[1], m[2]]));
    expect(() => loadConfig(env)).not.toThrow();
  });
});
