/** `--name value` of a benchmark's arguments as a positive number, or the fallback when absent. */
export function numberArg(args: readonly string[], name: string, fallback: number): number {
  const index = args.indexOf(`--${name}`);
  if (index < 0) return fallback;
  const value = Number(args[index + 1]);
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`--${name} needs a positive number`);
  return value;
}
