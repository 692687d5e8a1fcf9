/** Pipeline options from the command line, validated per pipeline; every problem is reported at once, by flag name. */
import type { z } from 'zod';
import { ConfigError } from './errors.ts';

export function parseOptions<S extends z.ZodType>(
  schema: S,
  raw: Readonly<Record<string, unknown>>,
  pipeline: string,
): z.output<S> {
  const parsed = schema.safeParse(raw);
  if (parsed.success) return parsed.data;
  throw new ConfigError(
    parsed.error.issues.map((issue) => {
      if (issue.code === 'unrecognized_keys')
        return `${pipeline}: unknown option ${issue.keys.map((k) => `--${k}`).join(', ')}`;
      return `${pipeline}: --${issue.path.join('.')}: ${issue.message}`;
    }),
  );
}
