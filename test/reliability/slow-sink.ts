/**
 * Preloaded (`node --import`) into a pipeline process to slow its ClickHouse
 * sink: while the epoch-ms deadline written in the file SLOW_SINK_FILE is in
 * the future, every insert is followed by a wait of (SLOW_SINK_FACTOR - 1)
 * times what the insert took, so inserts take that factor longer. Both insert
 * paths are slowed: the client's (a server) and chdb's raw insert (the rows
 * of the logs sink on chdb). The test writes the file when the slowdown should start; the
 * data path stays real.
 */
import { readFileSync } from 'node:fs';
import { ClickHouseClient } from '@clickhouse/client';
import { Session } from 'chdb';

const factor = Number(process.env.SLOW_SINK_FACTOR ?? '100');
const file = process.env.SLOW_SINK_FILE ?? '';
const deadline = (): number => {
  try {
    return Number(readFileSync(file, 'utf8'));
  } catch {
    return 0;
  }
};
type Insert = (...args: unknown[]) => Promise<unknown>;

function slowDown(target: { insert: Insert }): void {
  const insert = target.insert;
  target.insert = async function slowInsert(this: unknown, ...args: unknown[]) {
    const started = performance.now();
    const result = await insert.apply(this, args);
    const until = deadline();
    if (Date.now() < until) {
      const took = performance.now() - started;
      await new Promise((r) => setTimeout(r, Math.min(took * (factor - 1), until - Date.now())));
    }
    return result;
  };
}

slowDown(Object.getPrototypeOf(ClickHouseClient.prototype) as { insert: Insert });
slowDown(Session.prototype as unknown as { insert: Insert });
