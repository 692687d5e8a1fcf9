/**
 * Hand-written SVG line charts, one panel per `series.panel` stacked
 * vertically (throughput above, RSS below), shared x axis in seconds. No
 * dependency: the output is a few kilobytes a browser or an image viewer opens.
 */
import type { BenchSeries } from './types.ts';

const WIDTH = 900;
const PANEL_HEIGHT = 260;
const MARGIN = { left: 80, right: 20, top: 40, bottom: 40 };
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

export function escapeXml(text: string): string {
  return text.replace(
    /[<>&"']/g,
    (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c] ?? c,
  );
}

/** 1, 2 or 5 times a power of ten: about `count` round ticks covering [0, max]. */
export function niceTicks(max: number, count = 5): number[] {
  if (!(max > 0) || !Number.isFinite(max)) return [0, 1];
  const raw = max / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? 10 * power;
  const ticks: number[] = [];
  for (let v = 0; v <= max + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  if ((ticks[ticks.length - 1] ?? 0) < max) ticks.push(Number((ticks.length * step).toPrecision(12)));
  return ticks;
}

function tickLabel(value: number): string {
  const magnitude = Math.abs(value);
  if (magnitude >= 1_000_000) return `${Number((value / 1_000_000).toPrecision(3))}M`;
  if (magnitude >= 1_000) return `${Number((value / 1_000).toPrecision(3))}k`;
  return String(Number(value.toPrecision(3)));
}

export function renderSvg(title: string, series: readonly BenchSeries[]): string {
  const panels = [...new Set(series.map((s) => s.panel))];
  const height = MARGIN.top + panels.length * (PANEL_HEIGHT + MARGIN.bottom) + 10;
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = PANEL_HEIGHT - 30;
  const maxX = Math.max(1, ...series.flatMap((s) => s.points.map(([x]) => x)));
  const xTicks = niceTicks(maxX, 8);
  const xMax = xTicks[xTicks.length - 1] ?? maxX;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${WIDTH / 2}" y="22" text-anchor="middle" font-size="15">${escapeXml(title)}</text>`,
  ];
  panels.forEach((panel, p) => {
    const inPanel = series.filter((s) => s.panel === panel);
    const unit = inPanel[0]?.unit ?? '';
    const top = MARGIN.top + p * (PANEL_HEIGHT + MARGIN.bottom) + 20;
    const maxY = Math.max(0, ...inPanel.flatMap((s) => s.points.map(([, y]) => (Number.isFinite(y) ? y : 0))));
    const yTicks = niceTicks(maxY, 5);
    const yMax = yTicks[yTicks.length - 1] ?? 1;
    const sx = (x: number) => MARGIN.left + (x / xMax) * plotWidth;
    const sy = (y: number) => top + plotHeight - (y / yMax) * plotHeight;
    out.push(`<g class="panel" data-panel="${escapeXml(panel)}">`);
    out.push(`<text x="${MARGIN.left}" y="${top - 8}" font-size="13">${escapeXml(`${panel} (${unit})`)}</text>`);
    for (const y of yTicks) {
      out.push(
        `<line x1="${MARGIN.left}" x2="${MARGIN.left + plotWidth}" y1="${sy(y).toFixed(1)}" y2="${sy(y).toFixed(1)}" stroke="#e5e5e5"/>`,
      );
      out.push(`<text x="${MARGIN.left - 6}" y="${(sy(y) + 4).toFixed(1)}" text-anchor="end">${tickLabel(y)}</text>`);
    }
    for (const x of xTicks) {
      out.push(
        `<text x="${sx(x).toFixed(1)}" y="${top + plotHeight + 16}" text-anchor="middle">${tickLabel(x)}</text>`,
      );
    }
    out.push(
      `<text x="${MARGIN.left + plotWidth / 2}" y="${top + plotHeight + 32}" text-anchor="middle">seconds</text>`,
    );
    out.push(
      `<rect x="${MARGIN.left}" y="${top}" width="${plotWidth}" height="${plotHeight}" fill="none" stroke="#999"/>`,
    );
    inPanel.forEach((s, i) => {
      const color = COLORS[(series.indexOf(s) >= 0 ? series.indexOf(s) : i) % COLORS.length];
      const points = s.points
        .filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y))
        .map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`);
      if (points.length > 0)
        out.push(
          `<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${points.join(' ')}"><title>${escapeXml(s.name)}</title></polyline>`,
        );
      // Legend in the panel's title row, so it never hides a line.
      const lx = MARGIN.left + 260 + i * 280;
      const ly = top - 8;
      out.push(`<line x1="${lx}" x2="${lx + 20}" y1="${ly - 4}" y2="${ly - 4}" stroke="${color}" stroke-width="2"/>`);
      out.push(`<text x="${lx + 25}" y="${ly}">${escapeXml(s.name)}</text>`);
    });
    out.push('</g>');
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
