/** The runner's Markdown table: one row per figure, its same-run baseline and the ratio between them. */
import type { BenchRow } from './types.ts';

export function formatNumber(value: number, unit: string): string {
  if (!Number.isFinite(value)) return String(value);
  if (unit === 'fraction') return value.toFixed(4);
  const magnitude = Math.abs(value);
  if (magnitude >= 1000) return Math.round(value).toLocaleString('en-US');
  if (Number.isInteger(value)) return String(value);
  if (magnitude >= 100) return value.toFixed(1);
  if (magnitude >= 10) return value.toFixed(2);
  return value.toFixed(4);
}

/** value / baseline, or '' when there is no baseline to divide by. */
export function formatRatio(value: number, baseline: number | undefined): string {
  if (baseline === undefined || baseline === 0 || !Number.isFinite(baseline) || !Number.isFinite(value)) return '';
  return `${(value / baseline).toFixed(2)}x`;
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

export function markdownTable(rows: readonly BenchRow[]): string {
  const header = ['scenario', 'metric', 'value', 'unit', 'baseline (same run)', 'ratio to baseline', 'target'];
  const lines = [
    `| ${header.join(' | ')} |`,
    `|${header.map((_, i) => (i >= 2 && i <= 5 && i !== 3 ? '---:' : '---')).join('|')}|`,
  ];
  for (const row of rows) {
    const cells = [
      row.scenario,
      row.metric,
      formatNumber(row.value, row.unit),
      row.unit,
      row.baseline === undefined ? '' : formatNumber(row.baseline, row.unit),
      formatRatio(row.value, row.baseline),
      row.target ?? '',
    ];
    lines.push(`| ${cells.map(cell).join(' | ')} |`);
  }
  return lines.join('\n');
}
