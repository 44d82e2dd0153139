/**
 * A parallel-coordinates chart (SVG; the geometry is parallel.ts): one vertical axis per
 * parameter and a last one for a metric, one line per run, shaded by how good its metric is.
 * Used by a sweep's view (its hyperparameters against its primary metric) and by compare (any
 * runs' parameters against a metric they logged).
 *
 * Hooks: the figure has the ``testid`` given (data-lines, data-axes); one path.jp-train-pc-line
 * per run (data-run-id, data-status) and one g.jp-train-pc-axis per axis (data-axis, data-kind).
 */

import { el } from './dom';
import { axisPosition, axisTicks, IAxis, pathData } from './parallel';

/** Colour steps of a line by how good its metric is (jp-train-pc-q0 worst .. q4 best). */
const SHADES = 5;

export interface IParallelRow {
  id: string;
  status?: string;
  /** Values by axis key (the metric axis reads ``metric``). */
  values: Record<string, unknown>;
  metric: number | null;
  /** How good the metric is among the rows, in [0, 1] (1 best); null without one. */
  quality: number | null;
  /** The line's tooltip. */
  title: string;
  /** Extra classes of the line (a stopped sweep child is dashed). */
  className?: string;
}

export interface IParallelChartOptions {
  caption: string;
  testid: string;
  width?: number;
  height?: number;
  onHover?: (runId: string | null) => void;
  onClick?: (runId: string) => void;
}

/** Lines are drawn worst first, so the best lie on top. */
export function renderParallelChart(rows: ReadonlyArray<IParallelRow>, axes: ReadonlyArray<IAxis>, options: IParallelChartOptions): HTMLElement {
  const width = options.width ?? 640;
  const height = options.height ?? 260;
  const m = { top: 28, right: 48, bottom: 14, left: 48 };
  const figure = document.createElement('figure');
  figure.className = 'jp-train-chart jp-train-parallel';
  figure.dataset.testid = options.testid;
  figure.dataset.lines = String(rows.length);
  figure.dataset.axes = String(axes.length);
  figure.style.maxWidth = `${width}px`; // drawn at its size: never scaled up (text stays 11 px)
  const caption = document.createElement('figcaption');
  caption.className = 'jp-train-chart-title';
  caption.textContent = options.caption;
  figure.appendChild(caption);
  const svg = el('svg', { viewBox: `0 0 ${width} ${height}`, width: '100%', preserveAspectRatio: 'xMidYMid meet', role: 'img', 'aria-label': options.caption });
  figure.appendChild(svg);

  const pw = width - m.left - m.right;
  const ph = height - m.top - m.bottom;
  const ax = (i: number) => m.left + (axes.length > 1 ? (i * pw) / (axes.length - 1) : pw / 2);
  const ay = (pos: number) => m.top + ph - pos * ph;

  const lines = el('g', { class: 'jp-train-pc-lines' }, svg);
  const drawn = rows.slice().sort((a, b) => (a.quality ?? -1) - (b.quality ?? -1));
  for (const row of drawn) {
    const shade = row.quality === null ? 'jp-train-pc-nometric' : `jp-train-pc-q${Math.min(SHADES - 1, Math.floor(row.quality * SHADES))}`;
    const positions = axes.map(a => axisPosition(a, a.metric ? row.metric : row.values[a.key]));
    const path = el('path', {
      d: pathData(positions.map((pos, i) => (pos === null ? null : [ax(i), ay(pos)]))),
      class: `jp-train-pc-line ${shade}${row.className ? ` ${row.className}` : ''}`,
      'data-run-id': row.id,
      'data-status': row.status ?? '',
      fill: 'none'
    }, lines);
    el('title', {}, path).textContent = row.title;
    if (options.onHover) {
      path.addEventListener('mouseenter', () => options.onHover?.(row.id));
      path.addEventListener('mouseleave', () => options.onHover?.(null));
    }
    if (options.onClick) {
      path.addEventListener('click', () => options.onClick?.(row.id));
    }
  }
  axes.forEach((axis, i) => drawAxis(svg, axis, ax(i), m.top, ph, ay, i === axes.length - 1));
  return figure;
}

function drawAxis(svg: SVGSVGElement, axis: IAxis, x: number, top: number, ph: number, ay: (p: number) => number, last: boolean): void {
  const g = el('g', { class: `jp-train-pc-axis${axis.metric ? ' jp-train-pc-metric-axis' : ''}`, 'data-axis': axis.key, 'data-kind': axis.kind }, svg);
  el('line', { x1: x, x2: x, y1: top, y2: top + ph, class: 'jp-train-chart-axis' }, g);
  const label = el('text', { x, y: top - 12, 'text-anchor': 'middle', class: 'jp-train-pc-label' }, g);
  label.textContent = axis.kind === 'log' ? `${axis.label} (log)` : axis.label;
  for (const t of axisTicks(axis)) {
    el('line', { x1: x - 3, x2: x, y1: ay(t.pos), y2: ay(t.pos), class: 'jp-train-chart-axis' }, g);
    const text = el('text', { x: last ? x + 5 : x - 5, y: ay(t.pos) + 3, 'text-anchor': last ? 'start' : 'end', class: 'jp-train-chart-tick' }, g);
    text.textContent = t.label;
  }
}
