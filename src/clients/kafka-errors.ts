/**
 * How a kafkajs error is classified (src/core/errors.ts): one table for the Kafka source and the Kafka producer, so
 * both retry exactly the errors kafkajs itself calls retriable, and connection failures.
 */
import { ErrorCodes, type ClassificationRule } from '../core/errors.ts';

/** kafkajs marks its own errors retriable or not; connection failures are retriable. */
export const kafkaErrorRules: readonly ClassificationRule[] = [
  {
    match: (e) => (e as { retriable?: unknown }).retriable === true,
    code: ErrorCodes.UPSTREAM_UNAVAILABLE,
    retriable: true,
  },
  {
    match: (e) => /ECONNREFUSED|ECONNRESET|ETIMEDOUT|Connection error|not connected/i.test(e.message),
    code: ErrorCodes.UPSTREAM_UNAVAILABLE,
    retriable: true,
  },
  {
    match: (e) => (e as { retriable?: unknown }).retriable === false,
    code: ErrorCodes.SINK_REJECTED,
    retriable: false,
  },
];
