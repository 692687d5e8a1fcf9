/**
 * A message of vectorization-queue (written by ingest for WARN, ERROR and
 * FATAL logs): one log of an error pattern, to be embedded by vectorize.
 */
import { z } from 'zod';
import { InputError } from '../core/errors.ts';
import { storableString } from '../core/text.ts';
import { MAX_DATE_MS } from './log-event.ts';

const requestSchema = z.object({
  log_id: z.uuid(),
  error_hash: z.string().regex(/^\d{1,20}$/),
  // Text from the queue is stored in PostgreSQL and ClickHouse further on: NUL and lone surrogates are refused here.
  template: storableString().min(1).max(65_536),
  message: storableString().max(65_536),
  service: storableString().min(1).max(128),
  environment: storableString().max(64),
  level: z.enum(['WARN', 'ERROR', 'FATAL']),
  // Bounded to what a Date holds: the request's time is printed and stored as a date further on.
  timestamp: z.number().min(-MAX_DATE_MS).max(MAX_DATE_MS),
});

export type VectorizationRequest = z.output<typeof requestSchema>;

/** The request in a queue message's bytes; an InputError says what is wrong with it. */
export function parseVectorizationRequest(value: Buffer): VectorizationRequest {
  let json: unknown;
  try {
    json = JSON.parse(value.toString('utf8'));
  } catch (error) {
    throw new InputError(`not valid JSON: ${(error as Error).message}`);
  }
  const parsed = requestSchema.safeParse(json);
  if (!parsed.success)
    throw new InputError(
      `invalid vectorization request: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  return parsed.data;
}
