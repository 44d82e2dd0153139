/**
 * The Metrics tab of a run view: the latest value of each metric in a table and one chart per
 * metric (a line per rank), drawn from the run's MetricHistory. The history starts from a view
 * downsampled on the server and takes the points the run's stream sends after it.
 */

import { TrainApi } from './api';
import { ChartGroup, runSections } from './chart';
import { h } from './dom';
import { formatValue } from './format';
import { CHART_POINTS, IMetricPoint, MetricHistory } from './metrics';
import { RunImages } from './runimages';

/** Load the view again once this many points streamed in since (at most every RELOAD_MS). */
const RELOAD_AFTER_POINTS = 5000;
const RELOAD_MS = 5000;

export interface IRunMetricsOptions {
  api: TrainApi;
  runId: string;
  /** Whether the Metrics tab is the one showing (only then are the charts redrawn). */
  isShown: () => boolean;
  /** Called after each batch of new points is drawn (the run's header shows a metric). */
  onUpdate: () => void;
}

export class RunMetrics {
  /** Builds the table and the charts into ``panel``. */
  constructor(
    panel: HTMLElement,
    private readonly options: IRunMetricsOptions
  ) {
    this._table = h('table', { class: 'jp-train-kv jp-train-metrics-table', testid: 'jp-train-metrics-table' });
    this._charts = h('div', { class: 'jp-train-charts', testid: 'jp-train-charts' });
    this._charts.appendChild(this._group.element);
    panel.append(this._table, this._charts);
    this._images = new RunImages(panel, options.api, options.runId);
  }

  /** The points held: the stream resumes from its cursor, the header reads the latest values. */
  get history(): MetricHistory {
    return this._history;
  }

  /**
   * The charts' base: each series downsampled on the server (a run may hold millions of
   * points); the stream then sends the points after its cursor. When many have streamed in
   * since, the view is loaded again (at most every RELOAD_MS) so a chart never holds them all.
   */
  async load(): Promise<void> {
    const { api, runId } = this.options;
    this._loadedAt = Date.now();
    void this._images.load();
    try {
      this._history.load(await api.metricSeries(runId, CHART_POINTS));
      this._schedule();
    } catch (err) {
      console.warn(`jupyter-train: metrics of ${runId}`, err); // the stream still brings new points
    }
  }

  /** Points from the stream (its ``metrics`` message). */
  add(items: ReadonlyArray<IMetricPoint>, cursor?: number): void {
    this._images.add(items);
    if (this._history.add(items, cursor)) {
      this._schedule();
      this._maybeReload();
    }
  }

  /** Draw the table and the charts again. */
  render(): void {
    const metrics = this._history;
    const latest = metrics.latest();
    this._table.replaceChildren(
      h('tr', {}, h('th', {}, 'Metric'), h('th', {}, 'Latest'), h('th', {}, 'Step')),
      ...latest.map(m => h('tr', { 'data-metric': m.name }, h('td', {}, m.name), h('td', {}, formatValue(m.value)), h('td', {}, m.step === null ? '' : String(m.step))))
    );
    this._table.hidden = latest.length === 0;
    const names = metrics.names.filter(n => metrics.chartable.includes(n));
    const sections = runSections(names, name => metrics.ranks(name).map(r => [r, metrics.timedSeries(name, r)]));
    sections[0].empty = latest.length ? 'Charts appear when a metric has two or more numeric points.' : 'Metrics';
    this._group.setSections(sections);
  }

  /** Stop a pending reload of the view (the run view closes). */
  dispose(): void {
    if (this._reload !== null) {
      window.clearTimeout(this._reload);
    }
  }

  private _maybeReload(): void {
    if (this._history.streamed < RELOAD_AFTER_POINTS || this._reload !== null) {
      return;
    }
    const wait = Math.max(0, this._loadedAt + RELOAD_MS - Date.now());
    this._reload = window.setTimeout(() => {
      void this.load().finally(() => (this._reload = null));
    }, wait);
  }

  private _schedule(): void {
    if (this._timer === null) {
      this._timer = window.setTimeout(() => {
        this._timer = null;
        if (this.options.isShown()) {
          this.render();
        }
        this.options.onUpdate();
      }, 300);
    }
  }

  private _history = new MetricHistory();
  private _group = new ChartGroup({ xLabel: 'step' });
  private _images: RunImages;
  private _timer: number | null = null;
  private _reload: number | null = null;
  private _loadedAt = 0;
  private _table: HTMLTableElement;
  private _charts: HTMLDivElement;
}
