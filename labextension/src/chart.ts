/**
 * The metric charts of the panel. The chart itself is kernel_lib/widgets/chart.js, the one
 * source shared with the notebook run monitor (plain ES module, no dependency; its types are
 * chart.d.ts beside it): small multiples with their own y axes, round ticks and gridlines on both
 * axes, a legend that toggles lines, a hover read-out, smoothing, log y, x by step or wall time,
 * drag-to-zoom, and colours from CSS variables (light and dark themes).
 */

import {
  ChartGroup,
  ChartPoint,
  IChartSeries,
  renderChart as renderSharedChart
} from '../../kernel_lib/widgets/chart.js';
import { ISeries } from './metrics';

export {
  ChartGroup,
  formatTick,
  isSystemMetric,
  lineLabel,
  metricTitle,
  runSections
} from '../../kernel_lib/widgets/chart.js';
export type { IChartSection, IChartSeries } from '../../kernel_lib/widgets/chart.js';

export interface IChartOptions {
  title: string;
  width?: number;
  height?: number;
  xLabel?: string;
}

/**
 * One chart of ``series`` that keeps its own view (legend toggles, zoom by drag, reset by
 * double-click): data-testid="jp-train-chart", data-metric=title, data-series, data-points.
 */
export function renderChart(series: ReadonlyArray<ISeries | IChartSeries>, options: IChartOptions): HTMLElement {
  const group = new ChartGroup({ xLabel: options.xLabel, chartWidth: options.width, chartHeight: options.height });
  let figure = draw();
  function draw(): HTMLElement {
    return renderSharedChart(series, { ...options, metric: options.title, onChange: () => {
      const next = draw();
      figure.replaceWith(next);
      figure = next;
    } }, group.view);
  }
  return figure;
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

/**
 * Points with their times made relative to the series' first one, so that runs started hours
 * apart line up from 0 when compare's x axis is wall time.
 */
export function sinceStart(points: ReadonlyArray<ChartPoint>): ChartPoint[] {
  let t0 = Infinity;
  for (const p of points) {
    if (typeof p[2] === 'number' && p[2] < t0) {
      t0 = p[2];
    }
  }
  return points.map(p => (typeof p[2] === 'number' ? [p[0], p[1], p[2] - t0] : p) as ChartPoint);
}
