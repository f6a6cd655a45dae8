/**
 * The route detail's charts and the routes table's sparkline: small SVG drawn by the page itself
 * (no chart library: under the dashboard's CSP, `style-src 'self'`, nothing may set a style
 * attribute, and these need only lines, a limit and gaps). Colours and sizes come from classes
 * in route-detail.css. A null value is a gap (the gateway was not running): the line breaks, and
 * a gap between values is shaded and titled.
 */
import { html } from 'htm/preact';

export interface ChartLine {
  label: string;
  /** CSS class suffix: `line-<kind>`, `swatch-<kind>`. */
  kind: string;
  values: readonly (number | null)[];
}

export interface ChartProps {
  title: string;
  /** Start of each bucket, ms since the epoch. */
  t: readonly number[];
  stepMs: number;
  lines: readonly ChartLine[];
  /** A horizontal limit line (e.g. maxBytes). */
  limit?: number | null;
  format: (v: number) => string;
}

// Drawn near 1:1 at the usual widths (three charts across 1280 px, two at tablet width), so the
// 11 px axis labels stay readable.
const W = 420;
const H = 150;
const LEFT = 56;
const RIGHT = 8;
const TOP = 8;
const BOTTOM = 22;

/** An SVG path through the non-null values: one `M` per run, so gaps break the line. */
function path(
  values: readonly (number | null)[],
  x: (i: number) => number,
  y: (v: number) => number,
): string {
  let d = '';
  let run = 0;
  // A value alone between gaps gets a tiny stroke, which the round line cap draws as a dot.
  const endRun = () => {
    if (run === 1) d += 'h0.01';
    run = 0;
  };
  values.forEach((v, i) => {
    if (v === null) {
      endRun();
      return;
    }
    d += `${run > 0 ? 'L' : 'M'}${x(i).toFixed(1)} ${y(v).toFixed(1)}`;
    run++;
  });
  endRun();
  return d;
}

/** Runs of null between the first and the last value: when the gateway was not running. */
function gaps(lines: readonly ChartLine[], n: number): [number, number][] {
  const seen = (i: number) => lines.some((l) => l.values[i] !== null && l.values[i] !== undefined);
  const first = Array.from({ length: n }, (_, i) => i).find(seen);
  if (first === undefined) return [];
  let last = n - 1;
  while (last > first && !seen(last)) last--;
  const runs: [number, number][] = [];
  let start: number | undefined;
  for (let i = first; i <= last; i++) {
    if (!seen(i)) start ??= i;
    else if (start !== undefined) {
      // A single missing bucket at 1 s is a late reading, not a stop.
      if (i - start > 1) runs.push([start, i - 1]);
      start = undefined;
    }
  }
  return runs;
}

function clockLabel(ms: number, stepMs: number): string {
  const d = new Date(ms);
  const hm = d.toLocaleTimeString('en-GB', { hour12: false, hour: '2-digit', minute: '2-digit' });
  return stepMs < 10_000 ? d.toLocaleTimeString('en-GB', { hour12: false }) : hm;
}

export function Chart({ title, t, stepMs, lines, limit, format }: ChartProps) {
  const n = t.length;
  let max = limit ?? 0;
  for (const l of lines) for (const v of l.values) if (v !== null && v > max) max = v;
  if (max <= 0) max = 1;
  const x = (i: number) => LEFT + (n <= 1 ? 0 : (i / (n - 1)) * (W - LEFT - RIGHT));
  const y = (v: number) => TOP + (1 - v / max) * (H - TOP - BOTTOM);
  const latest = lines
    .map((l) => {
      const v = [...l.values].reverse().find((x) => x !== null);
      return `${l.label} ${v === undefined || v === null ? 'no data' : format(v)}`;
    })
    .join(', ');
  const ticks = n > 0 ? [0, Math.floor((n - 1) / 2), n - 1] : [];
  return html`<figure class="chart">
    <figcaption>${title}</figcaption>
    <svg viewBox=${`0 0 ${W} ${H}`} role="img" aria-label=${`${title}: ${latest}`}>
      ${gaps(lines, n).map(
        ([
          a,
          b,
        ]) => html`<rect key=${`gap-${a}`} class="gap" x=${x(a)} y=${TOP} width=${Math.max(2, x(b) - x(a))}
          height=${H - TOP - BOTTOM}><title>No data: the gateway was not running</title></rect>`,
      )}
      ${[0, 0.5, 1].map(
        (f) => html`<g key=${`grid-${f}`}>
          <line class="grid" x1=${LEFT} x2=${W - RIGHT} y1=${y(max * f)} y2=${y(max * f)} />
          <text class="axis" x=${LEFT - 6} y=${y(max * f) + 4} text-anchor="end">${format(max * f)}</text>
        </g>`,
      )}
      ${ticks.map(
        (i, k) => html`<text key=${`tick-${i}`} class="axis" x=${x(i)} y=${H - 6}
          text-anchor=${k === 0 ? 'start' : k === ticks.length - 1 ? 'end' : 'middle'}>${clockLabel(t[i]!, stepMs)}</text>`,
      )}
      ${
        limit !== undefined && limit !== null
          ? html`<line class="limit" x1=${LEFT} x2=${W - RIGHT} y1=${y(limit)} y2=${y(limit)}><title>Limit ${format(limit)}</title></line>`
          : null
      }
      ${lines.map((l) => html`<path key=${l.kind} class=${`line line-${l.kind}`} d=${path(l.values, x, y)} />`)}
    </svg>
    ${
      lines.length > 1 || limit
        ? html`<ul class="legend">${lines.map(
            (l) =>
              html`<li key=${l.kind}><span class=${`swatch swatch-${l.kind}`} aria-hidden="true"></span>${l.label}</li>`,
          )}${limit ? html`<li><span class="swatch swatch-limit" aria-hidden="true"></span>limit</li>` : null}</ul>`
        : null
    }
  </figure>`;
}

/** The routes table's inQueue over the last 5 minutes: a line, no axes. */
export function Sparkline({ values, label }: { values: readonly (number | null)[]; label: string }) {
  const n = values.length;
  let max = 0;
  for (const v of values) if (v !== null && v > max) max = v;
  const w = 72;
  const h = 22;
  const x = (i: number) => (n <= 1 ? 0 : (i / (n - 1)) * w);
  const y = (v: number) => 2 + (1 - (max > 0 ? v / max : 0)) * (h - 4);
  return html`<svg class="spark" viewBox=${`0 0 ${w} ${h}`} role="img" aria-label=${label}>
    <line class="grid" x1="0" x2=${w} y1=${h - 2} y2=${h - 2} />
    <path class="line line-inQueue" d=${path(values, x, y)} />
  </svg>`;
}
