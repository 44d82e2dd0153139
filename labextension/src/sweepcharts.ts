/**
 * A sweep's charts: parallel coordinates (parallelchart.ts, the geometry parallel.ts) and the primary metric of every child over its steps (chart.ts's line chart).
 *
 * Hooks: [data-testid=jp-train-sweep-parallel] (data-children, data-axes) with one
 * path.jp-train-pc-line per child (data-run-id, data-status); [data-testid=jp-train-sweep-metric-chart].
 */

import { renderChart } from './chart';
import { formatValue } from './format';
import { buildAxes, polylines, quality } from './parallel';
import { renderParallelChart } from './parallelchart';
import { IRun } from './runs';
import { cancelReason, formatHyperparameters, hyperparameters, ISweepConfig, isStopped } from './sweeps';
import { ISeries } from './metrics';

export interface IParallelOptions {
  names: ReadonlyArray<string>;
  width?: number;
  height?: number;
  /** Called with a child's id when the pointer enters its line (null when it leaves). */
  onHover?: (runId: string | null) => void;
  onClick?: (runId: string) => void;
}

/**
 * The parallel-coordinates chart of ``children``: the sweep's hyperparameters (their ranges
 * from its parameter space) against its primary metric, shaded per its goal; a stopped
 * child's line is dashed.
 */
export function renderParallel(children: ReadonlyArray<IRun>, cfg: ISweepConfig, options: IParallelOptions): HTMLElement {
  const axes = buildAxes(children, options.names, cfg);
  const metricAxis = axes[axes.length - 1];
  const rows = polylines(children, axes, cfg).map((p, i) => {
    const run = children[i];
    const reason = cancelReason(run);
    return {
      id: run.id,
      status: run.status,
      values: hyperparameters(run),
      metric: p.metric,
      quality: quality(p.metric, metricAxis, cfg.primary_metric_goal),
      className: isStopped(run) ? 'jp-train-pc-stopped' : undefined,
      title: `${run.id}\n${formatHyperparameters(hyperparameters(run), options.names)}\n` +
        `${cfg.primary_metric_name} ${p.metric === null ? '—' : formatValue(p.metric)} · ${run.status}${reason ? `\n${reason}` : ''}`
    };
  });
  const figure = renderParallelChart(rows, axes, {
    caption: `Hyperparameters and ${cfg.primary_metric_name}`,
    testid: 'jp-train-sweep-parallel',
    width: options.width,
    height: options.height,
    onHover: options.onHover,
    onClick: options.onClick
  });
  figure.classList.add('jp-train-sweep-parallel');
  figure.dataset.children = String(children.length);
  return figure;
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
