import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { LogflowError, ErrorCodes } from '../src/errors.ts';
import { Health } from '../src/health.ts';
import { createLogger } from '../src/logger.ts';
import { retry, withRetryReporter } from '../src/retry.ts';

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _e, done) {
      for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { lines, logger: createLogger({ level: 'info', destination }) };
}

const unavailable = () => new LogflowError(ErrorCodes.SINK_UNAVAILABLE, 'connect ECONNREFUSED 127.0.0.1:5432', { retriable: true, stage: 'sink' });
const fast = { maxAttempts: 100, baseDelayMs: 1, maxDelayMs: 2, jitter: 'none' as const };

describe('health episodes', () => {
  it('stays degraded while any holder fails and logs each episode once at its start and once at its end', () => {
    const { lines, logger } = capture();
    const health = new Health({ logger });
    const a = {};
    const b = {};
    expect(health.failing('postgres', 'refused', a)).toBe(true);
    expect(health.failing('postgres', 'refused', b)).toBe(false);
    expect(health.failing('postgres', 'refused', a)).toBe(false);
    expect(health.snapshot()).toMatchObject({ status: 'degraded', degraded: { postgres: 'refused' } });
    expect(health.recovered('postgres', a)).toBeUndefined();
    expect(health.snapshot().status).toBe('degraded');
    expect(health.recovered('postgres', b)).toMatchObject({ component: 'postgres', failures: 3 });
    expect(health.snapshot()).toMatchObject({ status: 'ok', degraded: {} });
    expect(lines.map((l) => l.msg)).toEqual([expect.stringContaining('postgres is failing'), expect.stringContaining('postgres recovered after')]);
  });

  it('retry loops report to the health they run under: degraded while retrying, ok after, one warning for many retries', async () => {
    const { lines, logger } = capture();
    const health = new Health({ logger });
    let calls = 0;
    const seen: string[] = [];
    const result = await withRetryReporter(health, () =>
      retry(async () => {
        calls += 1;
        seen.push(health.snapshot().status);
        if (calls < 6) throw unavailable();
        return 'done';
      }, fast),
    );
    expect(result).toBe('done');
    expect(seen).toEqual(['ok', 'degraded', 'degraded', 'degraded', 'degraded', 'degraded']);
    expect(health.snapshot().status).toBe('ok');
    expect(lines.filter((l) => String(l.msg).includes('is failing'))).toHaveLength(1);
    expect(lines.filter((l) => String(l.msg).includes('recovered after'))).toEqual([expect.objectContaining({ component: 'sink:SINK_UNAVAILABLE', failures: 5 })]);
  });

  it('a loop that gives up no longer holds the component degraded', async () => {
    const health = new Health();
    await expect(withRetryReporter(health, () => retry(async () => Promise.reject(unavailable()), { ...fast, maxAttempts: 3 }))).rejects.toThrow(/gave up after 3 attempts/);
    expect(health.snapshot().status).toBe('ok');
  });
});
