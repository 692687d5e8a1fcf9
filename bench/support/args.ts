/** `--name value` of a benchmark's arguments as a positive number, or the fallback when absent. */
export function numberArg(args: readonly string[], name: string, fallback: number): number {
  const index = args.indexOf(`--${name}`);
  if (index < 0) return fallback;
  const value = Number(args[index + 1]);
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`--${name} needs a positive number`);
  return value;
}

/** `--name value` as a string, or the fallback when absent. */
export function stringArg(args: readonly string[], name: string, fallback: string): string {
  const index = args.indexOf(`--${name}`);
  if (index < 0) return fallback;
  const value = args[index + 1];
  if (value === undefined || value.startsWith('--')) throw new RangeError(`--${name} needs a value`);
  return value;
}

export function flagArg(args: readonly string[], name: string): boolean {
  return args.includes(`--${name}`);
}

/** `--name 10m` / `90s` / `1h` / `1500ms` / a bare number of seconds, as milliseconds. */
export function durationArg(args: readonly string[], name: string, fallbackMs: number): number {
  const index = args.indexOf(`--${name}`);
  if (index < 0) return fallbackMs;
  return parseDuration(args[index + 1] ?? '', `--${name}`);
}

export function parseDuration(text: string, what = 'duration'): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (match === null) throw new RangeError(`${what} needs a duration like 30s, 10m or 1h, got "${text}"`);
  const value = Number(match[1]);
  const unit = match[2] ?? 's';
  const ms = value * { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[unit as 'ms' | 's' | 'm' | 'h'];
  if (!(ms > 0)) throw new RangeError(`${what} must be positive`);
  return ms;
}
