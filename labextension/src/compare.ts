/**
 * Several runs' metrics on one chart per metric (the metrics every run logged, else any), with
 * a table of their status, duration and latest values. Runs still going have their downsampled
 * view polled every two seconds; their status comes from the live run list.
 */

import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { renderChart } from './chart';
import { ITrainContext, notifyError } from './context';
import { isTerminal } from './contract';
import { h, statusBadge } from './dom';
import { formatDuration, formatValue } from './format';
import { trainIcon } from './icons';
import { CHART_POINTS, comparableMetrics, MetricHistory } from './metrics';
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
    this.node.append(h('h2', { class: 'jp-train-runview-title' }, this.title.label), this._table, this._charts);
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
    const names = comparableMetrics(histories);
    const latest = this.runIds.map((id, i) => new Map(histories[i].latest().map(m => [m.name, m.value])));
    const metricCols = Array.from(new Set(histories.flatMap(hh => hh.names)));
    this._table.replaceChildren(
      h('tr', {}, h('th', {}, ''), h('th', {}, 'Run'), h('th', {}, 'Status'), h('th', {}, 'Duration'),
        ...metricCols.map(n => h('th', {}, n))),
      ...this.runIds.map((id, i) => {
        const run = this._run(id);
        return h('tr', { 'data-run-id': id },
          h('td', {}, h('span', { class: `jp-train-series-key jp-train-series-${i % 8}` })),
          h('td', {}, h('a', { href: '#', onclick: (ev: Event) => { ev.preventDefault(); this.ctx.openRun(id); } }, runLabel(run, id))),
          h('td', {}, run ? statusBadge(run.status) : ''),
          h('td', {}, run ? formatDuration(runDuration(run, now)) : ''),
          ...metricCols.map(n => h('td', {}, formatValue(latest[i].get(n) ?? null))));
      })
    );
    if (!names.length) {
      this._charts.replaceChildren(h('p', { class: 'jp-train-message' }, 'No metric with two or more points to chart yet.'));
      return;
    }
    this._charts.replaceChildren(
      ...names.map(name =>
        renderChart(this.runIds.map((id, i) => histories[i].series(name, 0, runLabel(this._run(id), id))), {
          title: name,
          xLabel: 'step'
        })
      )
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
}
