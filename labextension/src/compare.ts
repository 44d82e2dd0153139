/**
 * Several runs side by side: a table of their display names, status, duration, parameters
 * (those that differ first), tags and latest metric values; a parallel-coordinates chart of
 * the parameters against a metric (the runs' primary metric unless another is picked); and one
 * chart per metric (the metrics every run logged, else any). Runs still going have their
 * downsampled view polled every two seconds; their status comes from the live run list.
 */

import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { ChartGroup, isSystemMetric, sinceStart } from './chart';
import { ITrainContext, notifyError } from './context';
import { isTerminal } from './contract';
import { h, statusBadge } from './dom';
import { formatDuration, formatValue } from './format';
import { trainIcon } from './icons';
import { CHART_POINTS, comparableMetrics, MetricHistory } from './metrics';
import { metricAxis, paramAxis } from './parallel';
import { renderParallelChart } from './parallelchart';
import { comparedParameters, defaultCompareMetric, formatParam, lowerIsBetter, parameterMap, ParamValue, userTags } from './params';
import { IRun, runDuration } from './runs';

const POLL_MS = 2000;

export function runLabel(run: IRun | undefined, id: string): string {
  return run?.tags?.display_name || id;
}

export class CompareView extends Widget {
  constructor(
    readonly runIds: string[],
    private readonly ctx: ITrainContext
  ) {
    super();
    this.id = `jupyter-train-compare-${runIds.join('-')}`.slice(0, 200);
    this.addClass('jp-train-compare');
    this.node.dataset.testid = 'jp-train-compare';
    this.node.dataset.runs = runIds.join(',');
    this.title.label = `Compare ${runIds.length} runs`;
    this.title.caption = runIds.join('\n');
    this.title.icon = trainIcon;
    this.title.closable = true;
    for (const id of runIds) {
      this._histories.set(id, new MetricHistory());
    }
    this._table = h('table', { class: 'jp-train-kv jp-train-compare-table', testid: 'jp-train-compare-table' });
    this._charts = h('div', { class: 'jp-train-charts', testid: 'jp-train-charts' });
    this._message = h('p', { class: 'jp-train-message' }, 'No metric with two or more points to chart yet.');
    this._charts.append(this._message, this._group.element);
    this._parallel = h('div', { class: 'jp-train-compare-parallel' });
    this.node.append(h('h2', { class: 'jp-train-runview-title' }, this.title.label),
      h('div', { class: 'jp-train-compare-table-box' }, this._table), this._parallel, this._charts);
    this._unsubscribe = ctx.store.subscribe(() => {
      const sig = this.runIds.map(id => this._run(id)?.status).join();
      if (sig !== this._statusSig) {
        this._statusSig = sig;
        this._render();
      }
    });
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    window.clearTimeout(this._timer);
    this._unsubscribe();
    super.dispose();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    if (!this._started) {
      this._started = true;
      void this._poll();
    }
  }

  private async _poll(): Promise<void> {
    if (this.isDisposed) {
      return;
    }
    try {
      await Promise.all(this.runIds.map(async id => {
        if (!this.ctx.store.get(id) && !this._runs.has(id)) {
          this._runs.set(id, await this.ctx.api.run(id));
        }
        const history = this._histories.get(id)!;
        if (this._done.has(id)) {
          return;
        }
        const finished = isTerminal(this._run(id)?.status ?? '');
        // downsampled on the server: a few thousand points per series, however many were logged
        history.load(await this.ctx.api.metricSeries(id, CHART_POINTS));
        if (finished) {
          this._done.add(id); // every point is in: no more polling for this one
        }
      }));
    } catch (err) {
      if (!this._reported) {
        this._reported = true;
        notifyError('Could not load metrics to compare', err);
      }
    }
    this._render();
    if (this._done.size < this.runIds.length) {
      this._timer = window.setTimeout(() => void this._poll(), POLL_MS);
    }
  }

  private _run(id: string): IRun | undefined {
    return this.ctx.store.get(id) ?? this._runs.get(id);
  }

  private _render(): void {
    const now = Date.now() / 1000;
    const histories = this.runIds.map(id => this._histories.get(id)!);
    const runs = this.runIds.map(id => this._run(id));
    const names = comparableMetrics(histories).filter(n => !isSystemMetric(n));
    const latest = this.runIds.map((id, i) => new Map(histories[i].latest().map(m => [m.name, m.value])));
    const metricCols = Array.from(new Set(histories.flatMap(hh => hh.names))).filter(n => !isSystemMetric(n));
    const known = runs.filter((r): r is IRun => !!r);
    const { names: paramCols, differing } = comparedParameters(known);
    const params = runs.map((r): Record<string, ParamValue> => (r ? parameterMap(r) : {}));
    const tags = runs.map(r => (r ? userTags(r) : []));
    const anyTags = tags.some(t => t.length);
    const head = (text: string, cls: string, title?: string) => h('th', { class: cls, title: title ?? text }, text);
    this._table.replaceChildren(
      h('tr', {}, h('th', {}, ''), h('th', {}, 'Run'), h('th', {}, 'Status'), h('th', {}, 'Duration'),
        ...paramCols.map(n => head(n, `jp-train-compare-param${differing.has(n) ? ' jp-train-compare-differs' : ''}`,
          differing.has(n) ? `${n}: differs between these runs` : `${n}: the same in every run`)),
        ...(anyTags ? [head('Tags', 'jp-train-compare-tags')] : []),
        ...metricCols.map(n => head(n, 'jp-train-compare-metric'))),
      ...this.runIds.map((id, i) => {
        const run = runs[i];
        return h('tr', { 'data-run-id': id },
          h('td', {}, h('span', { class: `jp-train-series-key jp-train-series-${i % 8}` })),
          h('td', {}, h('a', { href: '#', title: id, onclick: (ev: Event) => { ev.preventDefault(); this.ctx.openRun(id); } }, runLabel(run, id))),
          h('td', {}, run ? statusBadge(run.status) : ''),
          h('td', {}, run ? formatDuration(runDuration(run, now)) : ''),
          ...paramCols.map(n => h('td', { class: 'jp-train-compare-param', 'data-param': n }, formatParam(params[i][n]))),
          ...(anyTags ? [h('td', { class: 'jp-train-compare-tags' }, tags[i].map(([k, v]) => (v ? `${k}=${v}` : k)).join(', '))] : []),
          ...metricCols.map(n => h('td', { 'data-metric': n }, formatValue(latest[i].get(n) ?? null))));
      })
    );
    this._renderParallel(runs, params, latest, paramCols, metricCols.filter(n => latest.some(l => typeof l.get(n) === 'number')));
    if (!names.length) {
      this._message.hidden = false;
      this._group.element.hidden = true;
      return;
    }
    this._message.hidden = true;
    this._group.element.hidden = false;
    this._group.setSections([{
      id: 'metrics',
      title: '',
      charts: names.map(name => ({
        metric: name,
        title: name,
        series: this.runIds.map((id, i) => ({ label: runLabel(this._run(id), id), points: sinceStart(histories[i].timedSeries(name, 0)), color: i, id }))
      }))
    }]);
  }

  /**
   * Parameters against a metric: one axis per parameter (category axes for text values), the
   * metric's last value on the last axis, a line per run. A select picks the metric.
   */
  private _renderParallel(
    runs: ReadonlyArray<IRun | undefined>,
    params: ReadonlyArray<Record<string, ParamValue>>,
    latest: ReadonlyArray<Map<string, number | string>>,
    paramCols: ReadonlyArray<string>,
    metrics: ReadonlyArray<string>
  ): void {
    if (!paramCols.length || !metrics.length) {
      this._parallel.replaceChildren(h('p', { class: 'jp-train-message', testid: 'jp-train-compare-parallel-empty' },
        !paramCols.length ? 'These runs have no parameters to set against a metric (arguments like --lr 0.1 are parameters).' : 'A chart of the parameters against a metric appears when the runs log one.'));
      return;
    }
    if (!this._metric || !metrics.includes(this._metric)) {
      this._metric = defaultCompareMetric(runs, metrics);
    }
    const metric = this._metric;
    const values = latest.map(l => {
      const v = l.get(metric);
      return typeof v === 'number' && isFinite(v) ? v : null;
    });
    const axes = [...paramCols.map(n => paramAxis(n, undefined, params.map(p => p[n]))), metricAxis(metric, values)];
    const mAxis = axes[axes.length - 1];
    const [lo, hi] = mAxis.domain;
    const goalLow = lowerIsBetter(metric);
    const rows = this.runIds.map((id, i) => {
      const v = values[i];
      const pos = v === null || hi <= lo ? null : (v - lo) / (hi - lo);
      const run = runs[i];
      return {
        id,
        status: run?.status,
        values: params[i],
        metric: v,
        quality: pos === null ? null : goalLow ? 1 - pos : pos,
        title: `${runLabel(run, id)}\n${paramCols.map(n => `${n}=${formatParam(params[i][n])}`).join(' ')}\n${metric} ${v === null ? '—' : formatValue(v)}`
      };
    });
    const select = h('select', { class: 'jp-train-compare-metric-select', testid: 'jp-train-compare-metric-select', 'aria-label': 'Metric to set the parameters against' },
      ...metrics.map(n => h('option', { value: n }, n)));
    select.value = metric;
    select.addEventListener('change', () => {
      this._metric = select.value;
      this._render();
    });
    this._parallel.replaceChildren(
      h('div', { class: 'jp-train-compare-parallel-bar' }, h('label', {}, 'Parameters against ', select),
        h('span', { class: 'jp-train-meta' }, goalLow ? ' (lower is better: best in blue, worst in red)' : ' (higher is better: best in blue, worst in red)')),
      renderParallelChart(rows, axes, {
        caption: `Parameters and ${metric}`,
        testid: 'jp-train-compare-parallel',
        width: Math.max(480, 140 * axes.length),
        onClick: id => this.ctx.openRun(id)
      })
    );
  }

  private _histories = new Map<string, MetricHistory>();
  private _runs = new Map<string, IRun>();
  private _done = new Set<string>();
  private _timer = 0;
  private _started = false;
  private _reported = false;
  private _statusSig = '';
  private _unsubscribe: () => void;
  private _table: HTMLTableElement;
  private _charts: HTMLDivElement;
  private _message: HTMLParagraphElement;
  private _group = new ChartGroup({ xLabel: 'step' });
  private _parallel: HTMLDivElement;
  private _metric = '';
}

