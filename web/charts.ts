/** uPlot charts: the error-rate chart and pattern sparklines. */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { fmtAxisTime, fmtTime, timeZone } from './format.ts';

export const PALETTE = [
  '#3b6ef5',
  '#e5484d',
  '#12a594',
  '#f5a524',
  '#8e4ec6',
  '#0ea5e9',
  '#d6409f',
  '#46a758',
  '#ff8b3e',
  '#6e56cf',
];

function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

/** Ticks fall on whole hours and days of the preferred zone, not the browser's. */
function tzDate(seconds: number): Date {
  return uPlot.tzDate(new Date(seconds * 1000), timeZone());
}

/** Aligns per-series points on one x axis (seconds), null where a series has no point. */
export function align(series: ReadonlyArray<ReadonlyArray<readonly [number, number]>>): uPlot.AlignedData {
  const xs = [...new Set(series.flatMap((points) => points.map(([t]) => t)))].sort((a, b) => a - b);
  const index = new Map(xs.map((t, i) => [t, i]));
  const columns = series.map((points) => {
    const column: (number | null)[] = new Array<number | null>(xs.length).fill(null);
    for (const [t, v] of points) column[index.get(t) ?? 0] = v;
    return column;
  });
  return [xs, ...columns];
}

function follow(el: HTMLElement, chart: uPlot, height: number): () => void {
  const observer = new ResizeObserver(() => {
    const width = Math.floor(el.clientWidth);
    if (width > 0 && width !== chart.width) chart.setSize({ width, height });
  });
  observer.observe(el);
  return () => {
    observer.disconnect();
    chart.destroy();
  };
}

export interface LineSeries {
  readonly label: string;
  readonly points: ReadonlyArray<readonly [number, number]>;
}

/** A time-series line chart with a legend; returns its disposer. */
export function lineChart(
  el: HTMLElement,
  series: readonly LineSeries[],
  options: { readonly height?: number; readonly unit?: string; readonly format?: (v: number) => string } = {},
): () => void {
  const height = options.height ?? 280;
  const format = options.format ?? ((v: number) => `${v}`);
  const axis = {
    stroke: cssVar('--muted'),
    grid: { stroke: cssVar('--grid'), width: 1 },
    ticks: { stroke: cssVar('--grid'), width: 1 },
  };
  const opts: uPlot.Options = {
    width: Math.max(el.clientWidth, 300),
    height,
    tzDate,
    cursor: { drag: { x: true, y: false }, points: { size: 6 } },
    legend: { live: true },
    scales: { x: { time: true }, y: { range: (_u, min, max) => [Math.min(0, min), max > 0 ? max * 1.1 : 1] } },
    axes: [
      { ...axis, values: (_u, ticks, _axis, _space, step) => ticks.map((t) => fmtAxisTime(t, step)) },
      { ...axis, size: 60, values: (_u, ticks) => ticks.map((t) => format(t)) },
    ],
    series: [
      {
        label: 'Time',
        value: (_u: uPlot, v: number | null) => (v === null ? '—' : fmtTime(new Date(v * 1000)).slice(0, 16)),
      },
      ...series.map((s, i) => ({
        label: s.label,
        stroke: PALETTE[i % PALETTE.length] ?? '#888',
        width: 1.75,
        spanGaps: false,
        points: { show: false },
        value: (_u: uPlot, v: number | null) => (v === null ? '—' : format(v)),
      })),
    ],
  };
  const chart = new uPlot(opts, align(series.map((s) => s.points)), el);
  return follow(el, chart, height);
}

/** A tiny chart without axes or legend, for tables. */
export function sparkline(
  el: HTMLElement,
  points: ReadonlyArray<readonly [number, number]>,
  color = PALETTE[0] ?? '#3b6ef5',
): () => void {
  const width = el.clientWidth > 0 ? el.clientWidth : 140;
  const height = el.clientHeight > 0 ? el.clientHeight : 32;
  const chart = new uPlot(
    {
      width,
      height,
      pxAlign: false,
      cursor: { show: false },
      legend: { show: false },
      select: { show: false, left: 0, top: 0, width: 0, height: 0 },
      scales: { x: { time: false }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.15 : 1] } },
      axes: [{ show: false }, { show: false }],
      series: [{}, { stroke: color, width: 1.5, fill: `${color}22`, points: { show: false } }],
      padding: [2, 1, 2, 1],
    },
    align([points]),
    el,
  );
  return () => chart.destroy();
}
