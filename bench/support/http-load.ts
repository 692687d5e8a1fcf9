/**
 * Closed-loop HTTP load: `clients` callers, each sending its next request as
 * soon as its last one is answered, until the requests run out. Latency is
 * per request, from send to the whole body read.
 */
import { quantile } from './sampler.ts';

export interface LoadResult {
  readonly requests: number;
  readonly failures: number;
  readonly seconds: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

export async function closedLoopPosts(
  url: string,
  bodies: readonly unknown[],
  clients: number,
  onDone?: (done: number) => void,
): Promise<LoadResult> {
  const latencies: number[] = [];
  let next = 0;
  let failures = 0;
  const started = performance.now();
  const client = async (): Promise<void> => {
    for (let i = next++; i < bodies.length; i = next++) {
      const sent = performance.now();
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(bodies[i]),
      });
      await response.arrayBuffer();
      latencies.push(performance.now() - sent);
      if (!response.ok) failures += 1;
      onDone?.(latencies.length);
    }
  };
  await Promise.all(Array.from({ length: clients }, client));
  return {
    requests: latencies.length,
    failures,
    seconds: (performance.now() - started) / 1000,
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
  };
}
