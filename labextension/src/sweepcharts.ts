/**
 * A sweep's charts: parallel coordinates (SVG, no charting dependency; the geometry is
 * parallel.ts) and the primary metric of every child over its steps (chart.ts's line chart).
 *
 * Hooks: [data-testid=jp-train-sweep-parallel] (data-children, data-axes) with one
 * path.jp-train-pc-line per child (data-run-id, data-status); [data-testid=jp-train-sweep-metric-chart].
 */

import { renderChart } from './chart';
import { el } from './dom';
import { formatValue } from './format';
import { axisTicks, buildAxes, IAxis, pathData, polylines, quality } from './parallel';
import { IRun } from './runs';
import { cancelReason, formatHyperparameters, hyperparameters, ISweepConfig, isStopped } from './sweeps';
import { ISeries } from './metrics';

/** Colour steps of a line by how good its metric is (jp-train-pc-q0 worst .. q4 best). */
const SHADES = 5;

export interface IParallelOptions {
  names: ReadonlyArray<string>;
  width?: number;
  height?: number;
  /** Called with a child's id when the pointer enters its line (null when it leaves). */
  onHover?: (runId: string | null) => void;
  onClick?: (runId: string) => void;
}

/** The parallel-coordinates chart of ``children`` (drawn in the order given, best last on top). */
export function renderParallel(children: ReadonlyArray<IRun>, cfg: ISweepConfig, options: IParallelOptions): HTMLElement {
  const width = options.width ?? 640;
  const height = options.height ?? 260;
  const m = { top: 28, right: 40, bottom: 14, left: 40 };
  const axes = buildAxes(children, options.names, cfg);
  const figure = document.createElement('figure');
  figure.className = 'jp-train-chart jp-train-sweep-parallel';
  figure.dataset.testid = 'jp-train-sweep-parallel';
  figure.dataset.children = String(children.length);
  figure.dataset.axes = String(axes.length);
  const caption = document.createElement('figcaption');
  caption.className = 'jp-train-chart-title';
  caption.textContent = `Hyperparameters and ${cfg.primary_metric_name}`;
  figure.appendChild(caption);
  const svg = el('svg', { viewBox: `0 0 ${width} ${height}`, width: '100%', preserveAspectRatio: 'xMidYMid meet', role: 'img', 'aria-label': 'Parallel coordinates of the sweep' });
  figure.appendChild(svg);

  const pw = width - m.left - m.right;
  const ph = height - m.top - m.bottom;
  const ax = (i: number) => m.left + (axes.length > 1 ? (i * pw) / (axes.length - 1) : pw / 2);
  const ay = (pos: number) => m.top + ph - pos * ph;

  const lines = el('g', { class: 'jp-train-pc-lines' }, svg);
  const metricAxis = axes[axes.length - 1];
  // worst first, so the best lines are drawn last (on top)
  const drawn = polylines(children, axes, cfg)
    .map((p, i) => ({ p, run: children[i], q: quality(p.metric, metricAxis, cfg.primary_metric_goal) }))
    .sort((a, b) => (a.q ?? -1) - (b.q ?? -1));
  for (const { p, run, q } of drawn) {
    const shade = q === null ? 'jp-train-pc-nometric' : `jp-train-pc-q${Math.min(SHADES - 1, Math.floor(q * SHADES))}`;
    const path = el('path', {
      d: pathData(p.positions.map((pos, i) => (pos === null ? null : [ax(i), ay(pos)]))),
      class: `jp-train-pc-line ${shade}${isStopped(run) ? ' jp-train-pc-stopped' : ''}`,
      'data-run-id': run.id,
      'data-status': run.status,
      fill: 'none'
    }, lines);
    const title = el('title', {}, path);
    const reason = cancelReason(run);
    title.textContent = `${run.id}\n${formatHyperparameters(hyperparameters(run), options.names)}\n` +
      `${cfg.primary_metric_name} ${p.metric === null ? '—' : formatValue(p.metric)} · ${run.status}${reason ? `\n${reason}` : ''}`;
    if (options.onHover) {
      path.addEventListener('mouseenter', () => options.onHover?.(run.id));
      path.addEventListener('mouseleave', () => options.onHover?.(null));
    }
    if (options.onClick) {
      path.addEventListener('click', () => options.onClick?.(run.id));
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

/**
 * The primary metric of every child over its steps: one line per child (in ``children``'s
 * order, labelled by its hyperparameters), from ``series`` (run id -> its points).
 */
export function renderSweepMetricChart(
  children: ReadonlyArray<IRun>,
  series: ReadonlyMap<string, ISeries>,
  cfg: ISweepConfig,
  names: ReadonlyArray<string>
): HTMLElement {
  const lines = children.map(c => ({
    label: formatHyperparameters(hyperparameters(c), names) || c.id,
    points: series.get(c.id)?.points ?? []
  }));
  const box = document.createElement('div');
  box.className = 'jp-train-sweep-metric-chart';
  box.dataset.testid = 'jp-train-sweep-metric-chart';
  box.dataset.series = String(lines.filter(l => l.points.length).length);
  box.appendChild(renderChart(lines, { title: `${cfg.primary_metric_name} of every child`, xLabel: 'step', width: 520, height: 260 }));
  return box;
}
