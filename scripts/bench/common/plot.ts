/**
 * Distribution plots for the benchmarks as one self-contained HTML page: inline SVG,
 * no scripts, no external resources, so it opens anywhere and renders to PNG with a
 * plain screenshot. One panel per metric, one row per series (a mode): a box (p25-p75)
 * with the median, whiskers from min to max, a p95 tick, and every sample as a dot.
 */

export interface PlotPoint {
  value: number;
  /** Dot colour (#rrggbb); default grey. */
  colour?: string;
  /** Tooltip text. */
  label?: string;
}

export interface PlotSeries {
  /** Row label, e.g. the mode. */
  name: string;
  points: PlotPoint[];
}

export interface PlotMetric {
  label: string;
  unit: string;
  /** One line under the label saying what was measured. */
  note?: string;
  /** A reference value drawn as a dashed line (a threshold, a budget). */
  reference?: { value: number; label: string };
  series: PlotSeries[];
}

export interface PlotLegendEntry {
  colour: string;
  label: string;
}

export interface PlotPage {
  title: string;
  /** Lines under the title (run facts). */
  subtitle: string[];
  metrics: PlotMetric[];
  legend?: PlotLegendEntry[];
  /** Extra HTML appended below the plots (already escaped by the caller). */
  footerHtml?: string;
}

const WIDTH = 1000;
const LABEL_W = 150;
const RIGHT_PAD = 40;
const ROW_H = 64;
/** Room above each box for the row's numbers. */
const ROW_TOP = 14;
const AXIS_H = 34;

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

import { percentile } from './stats.ts';

export { percentile };

/** Round axis ticks covering [min, max]. */
function ticks(min: number, max: number, target = 8): number[] {
  const span = max - min || Math.abs(max) || 1;
  const raw = span / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => span / s <= target) ?? 10 * mag;
  const out: number[] = [];
  const last = Math.ceil(max / step - 1e-9) * step;
  for (let v = Math.floor(min / step) * step; v <= last + step * 1e-9; v += step) out.push(Math.round(v * 1e6) / 1e6);
  return out;
}

/** A deterministic spread of the dots across the row, so the plot is the same for the same data. */
function jitter(i: number): number {
  const x = Math.sin((i + 1) * 12.9898) * 43758.5453;
  return x - Math.floor(x) - 0.5;
}

function fmt(v: number): string {
  return Math.abs(v) >= 100 ? String(Math.round(v)) : String(Math.round(v * 10) / 10);
}

function panel(metric: PlotMetric): string {
  const all = metric.series.flatMap((s) => s.points.map((p) => p.value)).filter(Number.isFinite);
  const rows = Math.max(1, metric.series.length);
  const height = rows * ROW_H + AXIS_H + 10;
  const head = `<h2>${escapeHtml(metric.label)} <span class="unit">(${escapeHtml(metric.unit)})</span></h2>${metric.note ? `<p class="note">${escapeHtml(metric.note)}</p>` : ''}`;
  if (all.length === 0) return `<section>${head}<p class="empty">no samples</p></section>`;
  const ref = metric.reference ? [metric.reference.value] : [];
  const lo = Math.min(0, ...all, ...ref);
  const hi = Math.max(...all, ...ref);
  const axis = ticks(lo, hi === lo ? lo + 1 : hi);
  const min = axis[0]!;
  const max = axis[axis.length - 1]!;
  const plotW = WIDTH - LABEL_W - RIGHT_PAD;
  const x = (v: number): number => LABEL_W + ((v - min) / (max - min || 1)) * plotW;
  const parts: string[] = [];
  const axisY = rows * ROW_H + 4;
  for (const t of axis) {
    parts.push(`<line x1="${x(t)}" x2="${x(t)}" y1="0" y2="${axisY}" class="grid"/>`);
    parts.push(`<text x="${x(t)}" y="${axisY + 18}" class="tick">${fmt(t)}</text>`);
  }
  parts.push(`<line x1="${LABEL_W}" x2="${WIDTH - RIGHT_PAD}" y1="${axisY}" y2="${axisY}" class="axis"/>`);
  if (metric.reference) {
    const rx = x(metric.reference.value);
    parts.push(`<line x1="${rx}" x2="${rx}" y1="0" y2="${axisY}" class="reference"/>`);
    parts.push(`<text x="${rx + 4}" y="${axisY - 4}" class="reflabel">${escapeHtml(metric.reference.label)}</text>`);
  }
  metric.series.forEach((series, row) => {
    const mid = row * ROW_H + ROW_TOP + (ROW_H - ROW_TOP) / 2;
    const values = series.points.map((p) => p.value).filter(Number.isFinite).sort((a, b) => a - b);
    parts.push(`<text x="${LABEL_W - 12}" y="${mid - 3}" class="series">${escapeHtml(series.name)}</text>`);
    parts.push(`<text x="${LABEL_W - 12}" y="${mid + 13}" class="count">n=${values.length}</text>`);
    if (values.length === 0) return;
    const q1 = percentile(values, 25);
    const med = percentile(values, 50);
    const q3 = percentile(values, 75);
    const p95 = percentile(values, 95);
    const boxH = (ROW_H - ROW_TOP) * 0.6;
    parts.push(`<line x1="${x(values[0]!)}" x2="${x(values[values.length - 1]!)}" y1="${mid}" y2="${mid}" class="whisker"/>`);
    for (const end of [values[0]!, values[values.length - 1]!]) {
      parts.push(`<line x1="${x(end)}" x2="${x(end)}" y1="${mid - boxH / 4}" y2="${mid + boxH / 4}" class="whisker"/>`);
    }
    parts.push(`<rect x="${x(q1)}" y="${mid - boxH / 2}" width="${Math.max(1, x(q3) - x(q1))}" height="${boxH}" class="box"/>`);
    parts.push(`<line x1="${x(med)}" x2="${x(med)}" y1="${mid - boxH / 2}" y2="${mid + boxH / 2}" class="median"/>`);
    parts.push(`<path d="M${x(p95)},${mid + boxH / 2 + 2} l-4,7 h8 z" class="p95"><title>p95 ${fmt(p95)}</title></path>`);
    series.points.forEach((p, i) => {
      if (!Number.isFinite(p.value)) return;
      const cy = mid + jitter(i) * boxH * 0.9;
      const tip = `${p.label ? `${p.label}: ` : ''}${fmt(p.value)} ${metric.unit}`;
      parts.push(`<circle cx="${x(p.value)}" cy="${cy}" r="3.6" fill="${p.colour ?? '#555555'}" class="dot"><title>${escapeHtml(tip)}</title></circle>`);
    });
    parts.push(
      `<text x="${WIDTH - RIGHT_PAD}" y="${row * ROW_H + 11}" class="stats">min ${fmt(values[0]!)} · median ${fmt(med)} · p95 ${fmt(p95)} · max ${fmt(values[values.length - 1]!)}</text>`,
    );
  });
  return `<section>${head}<svg width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" xmlns="http://www.w3.org/2000/svg">${parts.join('')}</svg></section>`;
}

export function renderPlotPage(page: PlotPage): string {
  const legend = page.legend?.length
    ? `<p class="legend">${page.legend.map((l) => `<span><svg width="12" height="12"><circle cx="6" cy="6" r="5" fill="${l.colour}"/></svg> ${escapeHtml(l.label)}</span>`).join('')}
       <span><svg width="40" height="14"><rect x="2" y="2" width="36" height="10" class="box"/><line x1="20" x2="20" y1="2" y2="12" class="median"/></svg> p25-p75, median</span>
       <span><svg width="12" height="12"><path d="M6,2 l-4,7 h8 z" class="p95"/></svg> p95</span>
       <span>whiskers: min-max</span></p>`
    : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(page.title)}</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d1d1f; background: #fff; width: ${WIDTH}px; }
  h1 { font-size: 22px; margin: 0 0 4px; }
  h2 { font-size: 16px; margin: 18px 0 0; }
  .unit, .note, .sub { color: #666; font-weight: normal; }
  .note { margin: 0; font-size: 12px; }
  .sub { margin: 0; }
  .legend span { margin-right: 18px; white-space: nowrap; }
  .legend svg { vertical-align: middle; }
  .grid { stroke: #e6e6e6; }
  .axis { stroke: #999; }
  .tick { font-size: 11px; fill: #666; text-anchor: middle; }
  .series { font-size: 13px; font-weight: 600; text-anchor: end; }
  .count { font-size: 11px; fill: #777; text-anchor: end; }
  .stats { font-size: 11px; fill: #444; text-anchor: end; }
  .box { fill: #cfe0f7; stroke: #4a76b8; fill-opacity: 0.7; }
  .median { stroke: #0b3d91; stroke-width: 3; }
  .whisker { stroke: #4a76b8; stroke-width: 1.5; }
  .p95 { fill: #d9822b; }
  .reference { stroke: #c62828; stroke-dasharray: 5 4; stroke-width: 1.5; }
  .reflabel { font-size: 11px; fill: #c62828; }
  .dot { fill-opacity: 0.75; stroke: #fff; stroke-width: 0.6; }
  .empty { color: #999; }
  table { border-collapse: collapse; margin-top: 20px; font-size: 12px; }
  td, th { border: 1px solid #ddd; padding: 3px 7px; text-align: right; }
  th { background: #f4f4f4; }
  td:first-child, th:first-child { text-align: left; }
</style></head>
<body>
<h1>${escapeHtml(page.title)}</h1>
${page.subtitle.map((s) => `<p class="sub">${escapeHtml(s)}</p>`).join('\n')}
${legend}
${page.metrics.map(panel).join('\n')}
${page.footerHtml ?? ''}
</body></html>
`;
}
