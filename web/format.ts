/** Display formatting: every time is shown in the user's preferred time zone. */

let zone = 'UTC';
let formatter = makeFormatter('UTC');

function makeFormatter(timeZone: string): Intl.DateTimeFormat {
  return new Intl.DateTimeFormat('en-GB', {
    timeZone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    hourCycle: 'h23',
  });
}

export function isValidZone(timeZone: string): boolean {
  try {
    makeFormatter(timeZone);
    return true;
  } catch {
    return false;
  }
}

export function setTimeZone(timeZone: string): void {
  zone = isValidZone(timeZone) ? timeZone : 'UTC';
  formatter = makeFormatter(zone);
}

export function timeZone(): string {
  return zone;
}

export function timeZones(): string[] {
  const intl = Intl as unknown as { supportedValuesOf?: (key: string) => string[] };
  const zones = intl.supportedValuesOf?.('timeZone') ?? [];
  return zones.includes('UTC') ? zones : ['UTC', ...zones];
}

/** 'YYYY-MM-DD HH:mm:ss' in the preferred zone. */
export function fmtTime(value: string | Date | null | undefined): string {
  if (value === null || value === undefined || value === '') return '—';
  const date = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  const parts: Record<string, string> = {};
  for (const p of formatter.formatToParts(date)) parts[p.type] = p.value;
  return `${parts['year']}-${parts['month']}-${parts['day']} ${parts['hour']}:${parts['minute']}:${parts['second']}`;
}

export function fmtAgo(value: string | null | undefined, now = Date.now()): string {
  if (value === null || value === undefined) return '—';
  const seconds = Math.round((now - new Date(value).getTime()) / 1000);
  if (Number.isNaN(seconds)) return '—';
  if (seconds < 60) return `${Math.max(seconds, 0)}s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86_400) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86_400)} d ago`;
}

const compact = new Intl.NumberFormat('en', { notation: 'compact', maximumFractionDigits: 1 });
const plain = new Intl.NumberFormat('en');
export function fmtCount(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  return Math.abs(n) >= 100_000 ? compact.format(n) : plain.format(n);
}
export function fmtPercent(ratio: number | null | undefined): string {
  if (ratio === null || ratio === undefined || !Number.isFinite(ratio)) return '—';
  const pct = ratio * 100;
  return `${pct >= 10 ? pct.toFixed(0) : pct >= 1 ? pct.toFixed(1) : pct.toFixed(2)}%`;
}
export function fmtNumber(n: number | null | undefined, digits = 2): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  return Number.isInteger(n) ? plain.format(n) : n.toFixed(digits);
}

export const RANGES: ReadonlyArray<readonly [string, string]> = [
  ['1h', 'Last hour'],
  ['6h', 'Last 6 hours'],
  ['24h', 'Last 24 hours'],
  ['3d', 'Last 3 days'],
  ['7d', 'Last 7 days'],
];
const RANGE_MS: Record<string, number> = {
  '1h': 3_600_000,
  '6h': 21_600_000,
  '24h': 86_400_000,
  '3d': 259_200_000,
  '7d': 604_800_000,
};
export function isRange(value: unknown): value is string {
  return typeof value === 'string' && value in RANGE_MS;
}
export function rangeBounds(range: string, now = Date.now()): { from: string; to: string } {
  const span = RANGE_MS[range] ?? 86_400_000;
  return { from: new Date(now - span).toISOString(), to: new Date(now).toISOString() };
}

/** Time-axis tick labels in the preferred zone: HH:mm, or MM-DD at midnight and for day-sized steps. */
export function fmtAxisTime(seconds: number, stepSeconds: number): string {
  const parts: Record<string, string> = {};
  for (const p of formatter.formatToParts(new Date(seconds * 1000))) parts[p.type] = p.value;
  const day = `${parts['month']}-${parts['day']}`;
  const time = `${parts['hour']}:${parts['minute']}`;
  return stepSeconds >= 86_400 || time === '00:00' ? day : time;
}
