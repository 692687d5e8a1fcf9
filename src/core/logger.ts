/**
 * The engine's own logs: pino, JSON lines on stderr (stdout stays free for
 * command output such as `logflow normalize`). Secrets are redacted by path
 * so a config or request object can be logged whole without leaking keys.
 */
import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

export const REDACTED_PATHS = [
  'password',
  '*.password',
  'apiKey',
  '*.apiKey',
  '*.*.apiKey',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'headers["x-api-key"]',
];

export function createLogger(
  options: { level?: string; name?: string; destination?: NodeJS.WritableStream } = {},
): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      name: options.name ?? 'logflow',
      redact: { paths: REDACTED_PATHS, censor: '***' },
    },
    (options.destination ?? process.stderr) as pino.DestinationStream,
  );
}
