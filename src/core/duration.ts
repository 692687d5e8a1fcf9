/** Durations on the command line ("30s", "10m", "2h", or milliseconds), parsed by the `ms` package. */
import ms from 'ms';
import { z } from 'zod';

export const durationMs = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const parsed = typeof value === 'number' ? value : /^\d+$/.test(value) ? Number(value) : ms(value as ms.StringValue);
  if (typeof parsed !== 'number' || !Number.isFinite(parsed) || parsed <= 0) {
    ctx.addIssue({ code: 'custom', message: `"${String(value)}" is not a duration (e.g. 30s, 10m, 2h)` });
    return z.NEVER;
  }
  return parsed;
});
