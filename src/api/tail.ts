/**
 * Live tail: newly stored logs as server-sent events (README.md "Live tail").
 *
 * Live logs come from polling the logs table in commit order (TailPosition in
 * analytics.ts), not from a Kafka consumer: a tail then shows what the store
 * holds (validated, normalized, deduplicated), works the same on a ClickHouse
 * server and on chdb, and needs no consumer group or topic access in the API.
 * Connections asking for the same filters from "now" share one poller; a
 * resumed one (`Last-Event-ID`, `since`) polls alone until it is closed.
 *
 * A connection's buffer is what Node holds for its socket and has not yet
 * handed to the kernel: when new events would take it past `bufferBytes`
 * while it is not empty, the client is not keeping up; it gets a final
 * `closed` event saying so and is disconnected.
 */
import type { ServerResponse } from 'node:http';
import type { FastifyBaseLogger } from 'fastify';
import { Counter, Gauge, type Registry } from 'prom-client';
import {
  type Observable,
  type SchedulerLike,
  type Subscription,
  catchError,
  defer,
  filter,
  finalize,
  interval,
  map,
  merge,
  of,
  repeat,
  share,
  timer,
} from 'rxjs';
import { z } from 'zod';
import type { Analytics, LogMatch, TailPosition, TailRow } from './analytics.ts';
import { ApiError, invalid } from './errors.ts';
import { encodeCursor } from './schemas.ts';

export interface TailOptions {
  readonly pollMs: number;
  readonly maxConnections: number;
  readonly bufferBytes: number;
  readonly heartbeatMs: number;
}

/** Rows one poll reads at most; a full batch is followed at once by the next poll. */
export const TAIL_BATCH = 500;
/**
 * Rows are looked for among those ingested this long before the poll: an
 * insert commits after its rows got ingested_at (the ingest pipeline's clock,
 * src/pipelines/ingest.ts), and another host's clock may differ a little.
 */
export const TAIL_LOOKBACK_MS = 10 * 60_000;
/** How far back `since` and a resumed `Last-Event-ID` may reach. */
export const TAIL_MAX_REWIND_MS = 60 * 60_000;
/** A closed connection whose client reads nothing more is destroyed after this. */
export const TAIL_CLOSE_GRACE_MS = 10_000;

const HEARTBEAT = ': keep-alive\n\n';
/** A UInt64 in decimal: a forged id must be refused here, not fail every poll of its tail. */
const uint64 = z
  .string()
  .regex(/^(0|[1-9][0-9]{0,19})$/)
  .refine((v) => BigInt(v) <= 18_446_744_073_709_551_615n);

/** Event ids are opaque: the position of the row and its ingested_at, base64url JSON. */
const eventId = z.object({ b: uint64, o: uint64, t: z.number().int().min(0).max(8e12) }).strict();

export interface TailStart {
  readonly after: TailPosition;
  /** Rows ingested before this are not looked at until the first batch that is not full (catching up). */
  readonly since: number | undefined;
}

export interface TailResume {
  /** The `Last-Event-ID` header: the id of the last event the client got. */
  readonly lastEventId?: string | undefined;
  /** ISO date-time: start with the logs ingested since then. */
  readonly since?: string | undefined;
}

/** Where a tail starts: a resumed position, `since`, or the newest row stored now. */
export async function tailStart(analytics: Analytics, resume: TailResume, now: number): Promise<TailStart> {
  const floor = now - TAIL_MAX_REWIND_MS;
  if (resume.lastEventId !== undefined) {
    const id = decodeEventId(resume.lastEventId);
    return { after: { block: id.b, offset: id.o }, since: Math.max(floor, id.t - TAIL_LOOKBACK_MS) };
  }
  if (resume.since !== undefined) {
    const since = Date.parse(resume.since);
    if (since < floor) throw invalid('querystring.since', 'may reach back at most one hour');
    return { after: { block: '0', offset: '0' }, since };
  }
  return { after: await analytics.tailEnd(now - TAIL_LOOKBACK_MS), since: undefined };
}

function decodeEventId(text: string): z.output<typeof eventId> {
  try {
    const parsed = eventId.safeParse(JSON.parse(Buffer.from(text, 'base64url').toString('utf8')));
    if (parsed.success) return parsed.data;
  } catch {
    // Not base64url JSON: the same answer as a wrong shape.
  }
  throw invalid('headers.last-event-id', 'is not an event id sent by this endpoint');
}

/** One SSE event; data is one line of JSON, so messages with newlines cannot break the framing. */
export function sseEvent(event: string, data: unknown, id?: string): string {
  return `${id === undefined ? '' : `id: ${id}\n`}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

function logEvents(rows: readonly TailRow[]): string {
  let text = '';
  for (const row of rows) {
    const id = encodeCursor({ b: row.position.block, o: row.position.offset, t: row.ingestedAt });
    text += sseEvent('log', row.item, id);
  }
  return text;
}

/**
 * Polls `match` from `start`: immediately, then every `pollMs`, or at once
 * again after a full batch. Emits the SSE text of each non-empty batch, and a
 * `warning` event when a poll fails (the next poll tries again).
 */
export function pollTail(
  analytics: Analytics,
  match: LogMatch,
  start: TailStart,
  options: { readonly pollMs: number; readonly scheduler: SchedulerLike; readonly logger: FastifyBaseLogger },
): Observable<string> {
  return defer(() => {
    let after = start.after;
    let since = start.since;
    let full = false;
    const poll = defer(async () => {
      const lookFrom = since ?? options.scheduler.now() - TAIL_LOOKBACK_MS;
      const rows = await analytics.tail(match, after, lookFrom, TAIL_BATCH);
      full = rows.length === TAIL_BATCH;
      if (!full) since = undefined;
      const last = rows.at(-1);
      if (last !== undefined) after = last.position;
      return rows.length === 0 ? '' : logEvents(rows);
    }).pipe(
      catchError((error: unknown) => {
        full = false;
        options.logger.warn({ err: error }, 'live tail poll failed');
        return of(sseEvent('warning', { message: 'reading new logs failed; retrying' }));
      }),
    );
    return poll.pipe(
      repeat({ delay: () => timer(full ? 0 : options.pollMs, options.scheduler) }),
      filter((text) => text !== ''),
    );
  });
}

function metricsOf(registry: Registry): { open: Gauge; closed: Counter<'reason'> } {
  const open =
    (registry.getSingleMetric('logflow_tail_connections') as Gauge | undefined) ??
    new Gauge({ name: 'logflow_tail_connections', help: 'Open live tail connections', registers: [registry] });
  const closed =
    (registry.getSingleMetric('logflow_tail_closed_total') as Counter<'reason'> | undefined) ??
    new Counter({
      name: 'logflow_tail_closed_total',
      help: 'Live tail connections closed, by reason (client, slow_client, shutdown)',
      labelNames: ['reason'],
      registers: [registry],
    });
  return { open, closed };
}

type CloseReason = 'client' | 'slow_client' | 'shutdown';

/** One open tail: its response, its subscription, and the slot it holds. */
class TailConnection {
  #subscription: Subscription | undefined;
  #closed = false;

  constructor(
    readonly response: ServerResponse,
    private readonly bufferBytes: number,
    private readonly onClosed: (connection: TailConnection, reason: CloseReason) => void,
    private readonly scheduler: SchedulerLike,
  ) {
    response.once('close', () => this.close('client'));
  }

  get closed(): boolean {
    return this.#closed;
  }

  attach(events: Observable<string>): void {
    if (this.#closed) return;
    this.#subscription = events.subscribe((text) => this.send(text));
  }

  send(text: string): void {
    if (this.#closed) return;
    // Whatever is written lands in an empty buffer (a batch may be larger than the bound); only a backlog counts.
    const waiting = this.response.writableLength;
    if (waiting > 0 && waiting + Buffer.byteLength(text) > this.bufferBytes) {
      this.close('slow_client');
      return;
    }
    this.response.write(text);
  }

  /** Ends the stream; every reason but the client's own is told to the client in a last event. */
  close(reason: CloseReason): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#subscription?.unsubscribe();
    this.onClosed(this, reason);
    if (reason === 'client') return;
    const message =
      reason === 'slow_client'
        ? `the client did not read its events fast enough: more than ${this.bufferBytes} bytes were waiting`
        : 'the server is shutting down';
    this.response.end(sseEvent('closed', { reason, message }));
    // A client that reads nothing at all would hold the socket open forever.
    const grace = this.scheduler.schedule(() => this.response.destroy(), TAIL_CLOSE_GRACE_MS);
    this.response.once('close', () => grace.unsubscribe());
  }
}

/** The open tails and the shared pollers; the connection cap is enforced here. */
export class TailHub {
  readonly #connections = new Set<TailConnection>();
  readonly #shared = new Map<string, Observable<string>>();
  #reserved = 0;
  readonly #metrics: { open: Gauge; closed: Counter<'reason'> };

  constructor(
    private readonly analytics: Analytics,
    private readonly options: TailOptions,
    private readonly scheduler: SchedulerLike,
    private readonly logger: FastifyBaseLogger,
    registry: Registry,
  ) {
    this.#metrics = metricsOf(registry);
  }

  get open(): number {
    return this.#connections.size;
  }

  /** Takes a slot before any await, so concurrent requests cannot overshoot the cap; `release` gives it back. */
  reserve(): { release(): void } {
    if (this.#reserved >= this.options.maxConnections) {
      throw new ApiError(
        503,
        'tail_capacity',
        `the server already holds ${this.options.maxConnections} live tails (LOGFLOW_TAIL_MAX_CONNECTIONS); retry later`,
      );
    }
    this.#reserved += 1;
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.#reserved -= 1;
      },
    };
  }

  /**
   * The events of a tail of `match`: the shared poller of these filters when
   * the tail starts from now and one polls already, else a new poller from
   * where the tail starts. Throws (400, 5xx) before anything is streamed.
   */
  async source(match: LogMatch, resume: TailResume): Promise<Observable<string>> {
    const shared = resume.lastEventId === undefined && resume.since === undefined;
    const key = JSON.stringify(match);
    const existing = shared ? this.#shared.get(key) : undefined;
    if (existing !== undefined) return existing;
    const start = await tailStart(this.analytics, resume, this.scheduler.now());
    const poller = pollTail(this.analytics, match, start, {
      pollMs: this.options.pollMs,
      scheduler: this.scheduler,
      logger: this.logger,
    });
    if (!shared) return poller;
    // Another request may have started one while this one looked for its start.
    const raced = this.#shared.get(key);
    if (raced !== undefined) return raced;
    const sharedPoller = poller.pipe(
      finalize(() => this.#shared.delete(key)),
      share(),
    );
    this.#shared.set(key, sharedPoller);
    return sharedPoller;
  }

  /** Starts streaming `events` on a response whose headers are not sent yet; the slot is released when it closes. */
  stream(response: ServerResponse, slot: { release(): void }, events: Observable<string>): void {
    const connection = new TailConnection(
      response,
      this.options.bufferBytes,
      (c, reason) => {
        this.#connections.delete(c);
        slot.release();
        this.#metrics.open.set(this.#connections.size);
        this.#metrics.closed.inc({ reason });
      },
      this.scheduler,
    );
    if (response.destroyed || response.socket === null || response.socket.destroyed) {
      // The client left while the tail's start was looked up.
      connection.close('client');
      return;
    }
    this.#connections.add(connection);
    this.#metrics.open.set(this.#connections.size);
    response.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      // nginx would otherwise buffer the stream.
      'x-accel-buffering': 'no',
    });
    response.socket?.setNoDelay(true);
    connection.send(`retry: 3000\n\n${sseEvent('ready', { pollMs: this.options.pollMs })}`);
    connection.attach(merge(events, interval(this.options.heartbeatMs, this.scheduler).pipe(map(() => HEARTBEAT))));
  }

  /** Ends every tail with a last event; the server calls it before closing. */
  closeAll(): void {
    for (const connection of [...this.#connections]) connection.close('shutdown');
  }
}
