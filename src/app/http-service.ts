/**
 * What the HTTP pipelines (api, embeddings) share: options to listen with,
 * a start that closes the server again if it cannot listen, the bound URL
 * told to in-process callers, and a stop that closes after in-flight requests.
 */
import type { FastifyInstance } from 'fastify';
import { defaultIfEmpty, defer, ignoreElements, mergeMap, take, type Observable } from 'rxjs';
import { z } from 'zod';
import type { PipelineContext } from '../core/pipeline.ts';

export const listenOptions = {
  port: z.coerce.number().int().min(0).max(65_535).optional(),
  host: z.string().min(1).optional(),
  // In-process callers (npm start, tests, the bench) learn the bound URL; the command line cannot pass a function.
  onListening: z.custom<(url: string) => void>((v) => typeof v === 'function', 'must be a function').optional(),
};

export interface ServeOptions {
  readonly port: number;
  readonly host: string;
  /** Appended to the bound origin in the URL told to `onListening` and logged. */
  readonly path: string;
  readonly onListening?: ((url: string) => void) | undefined;
  /** Logged with the URL on listening. */
  readonly describe: (url: string, port: number) => Readonly<Record<string, unknown>>;
  readonly message: string;
}

/** Builds the server, listens, and runs until the pipeline is asked to stop. */
export function serveUntilStopped<R>(
  ctx: PipelineContext<R>,
  build: () => Promise<FastifyInstance>,
  options: ServeOptions,
): Observable<never> {
  return defer(async () => {
    const server = await build();
    try {
      await server.listen({ port: options.port, host: options.host });
    } catch (error) {
      await server.close();
      throw error;
    }
    const address = server.server.address();
    const bound = typeof address === 'object' && address !== null ? address.port : options.port;
    const { host } = options;
    const url = `http://${host.includes(':') ? `[${host}]` : host}:${bound}${options.path}`;
    ctx.logger.info(options.describe(url, bound), options.message);
    options.onListening?.(url);
    return server;
  }).pipe(
    mergeMap(
      (server): Observable<never> =>
        ctx.stopping$.pipe(
          take(1),
          // A stop asked for while the server was starting has already completed stopping$.
          defaultIfEmpty(undefined),
          mergeMap(() => server.close()),
          ignoreElements(),
        ),
    ),
  );
}
