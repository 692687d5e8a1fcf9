/**
 * The layers of ARCHITECTURE.md, enforced: a module imports only from its own
 * layer or a lower one, so a newcomer can read the tree from the bottom up and
 * a change to a pipeline can never be needed by the core.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(import.meta.dirname, '../src');

/** Lower number, lower layer. Folders of one rank may import each other. */
const RANK: Readonly<Record<string, number>> = {
  core: 0,
  domain: 1,
  clients: 1,
  operators: 2,
  sources: 2,
  sinks: 2,
  stores: 2,
  pipelines: 3,
  api: 3,
  app: 4,
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return entry.name.endsWith('.ts') ? [full] : [];
  });
}

function layerOf(file: string): string {
  const top = path.relative(SRC, file).split(path.sep)[0] ?? '';
  return top;
}

const importPattern = /(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g;

describe('layout', () => {
  const files = sourceFiles(SRC);

  it('puts every module under a layer folder, none at the src/ root', () => {
    const unplaced = files.filter((file) => !(layerOf(file) in RANK)).map((file) => path.relative(SRC, file));
    expect(unplaced).toEqual([]);
  });

  it('has no import from a lower layer to a higher one', () => {
    const violations: string[] = [];
    for (const file of files) {
      const from = layerOf(file);
      for (const match of readFileSync(file, 'utf8').matchAll(importPattern)) {
        const target = path.resolve(path.dirname(file), match[1]!);
        const to = layerOf(target);
        if ((RANK[to] ?? Infinity) > (RANK[from] ?? -Infinity)) {
          violations.push(`${path.relative(SRC, file)} (${from}) imports ${path.relative(SRC, target)} (${to})`);
        }
      }
    }
    expect(violations).toEqual([]);
  });
});
