/**
 * Preloaded (`node --import`) into a pipeline process to slow its ClickHouse
 * sink: while the epoch-ms deadline written in the file SLOW_SINK_FILE is in
 * the future, every insert of the real client is followed by a wait of
 * (SLOW_SINK_FACTOR - 1) times what the insert took, so inserts take that
 * factor longer. The test writes the file when the slowdown should start; the
 * data path stays real.
 */
import { readFileSync } from 'node:fs';
import { ClickHouseClient } from '@clickhouse/client';

const factor = Number(process.env.SLOW_SINK_FACTOR ?? '100');
const file = process.env.SLOW_SINK_FILE ?? '';
const deadline = (): number => {
  try {
    return Number(readFileSync(file, 'utf8'));
  } catch {
    return 0;
  }
};
const base = Object.getPrototypeOf(ClickHouseClient.prototype) as { insert: (...args: unknown[]) => Promise<unknown> };
const insert = base.insert;
base.insert = async function slowInsert(this: unknown, ...args: unknown[]) {
  const started = performance.now();
  const result = await insert.apply(this, args);
  const until = deadline();
  if (Date.now() < until) {
    const took = performance.now() - started;
    await new Promise((r) => setTimeout(r, Math.min(took * (factor - 1), until - Date.now())));
  }
  return result;
};
