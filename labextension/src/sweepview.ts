/**
 * A sweep in the main area: its config and children's counts, a table of the children best
 * first by the primary metric (a column per hyperparameter, status, why a policy stopped it),
 * a parallel-coordinates chart and the primary metric of every child over its steps.
 *
 * Live: the children come from the events feed (the store) on top of GET /runs?parent=ID
 * (fetched once, and again every POLL_MS while the feed is down or does not carry the sweep);
 * each unfinished child's series is polled every POLL_MS, a finished one's fetched once more
 * and kept.
 *
 * Hooks: [data-testid=jp-train-sweep-view] (data-run-id, data-status, data-children),
 * jp-train-sweep-table (rows tr[data-run-id], data-rank, data-metric, data-stopped),
 * jp-train-sweep-parallel, jp-train-sweep-metric-chart, jp-train-sweep-counts,
 * jp-train-sweep-best, jp-train-sweep-cancel, jp-train-sweep-compare.
 */

import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { ITrainContext, notifyError } from './context';
import { isTerminal } from './contract';
import { append, button, h, statusBadge } from './dom';
import { formatDuration, formatValue } from './format';
import { trainIcon } from './icons';
import { ISeries } from './metrics';
import { IRun, runDuration } from './runs';
import { renderParallel, renderSweepMetricChart } from './sweepcharts';
import {
  bestChild,
  cancelReason,
  childMetric,
  countsText,
  formatHyperparameters,
  formatParamValue,
  goalText,
  hyperparameterNames,
  hyperparameters,
  ISweepConfig,
  isStopped,
  paramLabel,
  policySummary,
  sortChildren,
  sweepConfig,
  sweepCounts
} from './sweeps';

const POLL_MS = 2000;
/** Points per child's series: a sweep may have many children on one chart. */
const SERIES_POINTS = 300;
/** Children the Compare button opens (the best ones). */
const COMPARE_TOP = 5;

export class SweepView extends Widget {
  constructor(
    readonly runId: string,
    private readonly ctx: ITrainContext
  ) {
    super();
    this.id = `jupyter-train-sweep-${runId}`;
    this.addClass('jp-train-sweepview');
    this.node.dataset.testid = 'jp-train-sweep-view';
    this.node.dataset.runId = runId;
    this.title.label = runId;
    this.title.caption = `Sweep ${runId}`;
    this.title.icon = trainIcon;
    this.title.closable = true;

    this._header = h('div', { class: 'jp-train-runview-header' });
    this._summary = h('div', { class: 'jp-train-sweep-summary' });
    this._cancel = button('Cancel sweep', () => void this.cancel(), { testid: 'jp-train-sweep-cancel', title: 'Stop the sweep and every child still running' });
    this._compare = button('Compare best', () => this.compareBest(), { testid: 'jp-train-sweep-compare', title: `The metrics of the ${COMPARE_TOP} best children on one chart each` });
    const details = button('Run details', () => void ctx.commands.execute('jupyter-train:open-run', { id: runId, view: 'run' }), { title: 'The parent run: overview, logs, SDK code' });
    this._table = h('table', { class: 'jp-train-kv jp-train-sweep-table', testid: 'jp-train-sweep-table' });
    this._parallel = h('div', { class: 'jp-train-sweep-parallel-box' });
    this._metricChart = h('div', { class: 'jp-train-sweep-metric-box' });
    this.node.append(
      this._header,
      this._summary,
      h('div', { class: 'jp-train-actions' }, this._cancel, this._compare, details),
      h('div', { class: 'jp-train-sweep-charts' }, this._parallel, this._metricChart),
      h('h3', {}, 'Child runs'),
      h('div', { class: 'jp-train-sweep-table-box' }, this._table)
    );
    this._unsubscribe = ctx.store.subscribe(() => this._scheduleRender());
  }

  /** The sweep's parent run (from the feed, else as fetched). */
  get run(): IRun | null {
    return this.ctx.store.get(this.runId) ?? this._parentRun;
  }

  /** Its children as known now: the feed's records over the fetched ones. */
  get childRuns(): IRun[] {
    const merged = new Map(this._fetched);
    for (const c of this.ctx.store.children(this.runId)) {
      merged.set(c.id, { ...this._fetched.get(c.id), ...c });
    }
    return Array.from(merged.values());
  }

  async cancel(): Promise<void> {
    try {
      this.ctx.store.upsert(await this.ctx.api.cancel(this.runId));
    } catch (err) {
      notifyError(`Could not cancel ${this.runId}`, err);
    }
  }

  compareBest(): void {
    const cfg = sweepConfig(this.run);
    if (!cfg) {
      return;
    }
    const ids = sortChildren(this.childRuns, cfg)
      .filter(c => childMetric(c, cfg.primary_metric_name) !== null)
      .slice(0, COMPARE_TOP)
      .map(c => c.id);
    if (ids.length < 2) {
      notifyError('Compare children', `fewer than two children have logged ${cfg.primary_metric_name} yet`);
      return;
    }
    this.ctx.compare(ids);
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    window.clearTimeout(this._timer);
    window.cancelAnimationFrame(this._frame);
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

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this._scheduleRender();
  }

  /** Fetch the children and the series of those not finished; again while the sweep goes on. */
  private async _poll(): Promise<void> {
    if (this.isDisposed) {
      return;
    }
    if (!this._parentRun || (this.isVisible && !document.hidden)) {
      try {
        if (!this.ctx.store.get(this.runId) || !this._parentRun) {
          this._parentRun = await this.ctx.api.run(this.runId);
        }
        // the feed brings the children of recent sweeps: over REST only at first, or without it
        if (!this._fetchedOnce || !this.ctx.feed.live || !this.ctx.store.get(this.runId)) {
          for (const c of await this.ctx.api.children(this.runId)) {
            this._fetched.set(c.id, c);
          }
          this._fetchedOnce = true;
        }
        await this._loadSeries();
        this._error = '';
      } catch (err) {
        const text = String((err as Error)?.message ?? err);
        if (text !== this._error) {
          this._error = text;
          notifyError(`Could not load the sweep ${this.runId}`, err);
        }
      }
      this._render();
    }
    const run = this.run;
    const going = !run || !isTerminal(run.status) || this.childRuns.some(c => !this._seriesDone.has(c.id));
    if (going && !this.isDisposed) {
      this._timer = window.setTimeout(() => void this._poll(), POLL_MS);
    }
  }

  private async _loadSeries(): Promise<void> {
    const cfg = sweepConfig(this.run);
    if (!cfg) {
      return;
    }
    const todo = this.childRuns.filter(c => !this._seriesDone.has(c.id));
    await Promise.all(todo.map(async c => {
      const finished = isTerminal(c.status);
      const view = await this.ctx.api.metricSeries(c.id, SERIES_POINTS);
      const s = view.series.filter(x => x.name === cfg.primary_metric_name).sort((a, b) => a.rank - b.rank)[0];
      this._series.set(c.id, { label: c.id, points: (s?.points ?? []).map(p => [p[0], p[1]] as [number, number]) });
      if (finished) {
        this._seriesDone.add(c.id);
      }
    }));
  }

  private _scheduleRender(): void {
    if (this._frame === 0 && !this.isDisposed) {
      this._frame = window.requestAnimationFrame(() => {
        this._frame = 0;
        this._render();
      });
    }
  }

  private _render(): void {
    const run = this.run;
    if (this.isDisposed || !run) {
      return;
    }
    const cfg = sweepConfig(run);
    this.node.dataset.status = run.status;
    this.title.label = run.tags?.display_name || run.id;
    this._cancel.disabled = isTerminal(run.status);
    if (!cfg) {
      this._header.replaceChildren(h('div', { class: 'jp-train-message jp-train-message-error', role: 'alert' }, `${run.id} is not a sweep.`));
      return;
    }
    const children = sortChildren(this.childRuns, cfg);
    const names = hyperparameterNames(children, cfg);
    this.node.dataset.children = String(children.length);
    this._renderHeader(run, cfg, children, names);
    this._renderTable(children, cfg, names);
    this._parallel.replaceChildren(renderParallel(children, cfg, {
      names,
      onHover: id => this._highlight(id),
      onClick: id => this.ctx.openRun(id)
    }));
    this._metricChart.replaceChildren(renderSweepMetricChart(children, this._series, cfg, names));
  }

  private _renderHeader(run: IRun, cfg: ISweepConfig, children: IRun[], names: string[]): void {
    const now = Date.now() / 1000;
    const best = bestChild(children, cfg);
    this._header.replaceChildren();
    append(
      this._header,
      h('h2', { class: 'jp-train-runview-title' }, run.tags?.display_name || run.id),
      h('span', { class: 'jp-train-sweep-badge' }, 'sweep'),
      statusBadge(run.status),
      h('span', { class: 'jp-train-meta' }, `${run.experiment} · ${formatDuration(runDuration(run, now))}`),
      run.error ? h('div', { class: 'jp-train-message jp-train-message-error', role: 'alert' }, run.error) : null
    );
    const limits = [
      `at most ${cfg.max_total_runs} children`,
      cfg.max_concurrent_runs ? `${cfg.max_concurrent_runs} at once` : '',
      cfg.max_duration_minutes ? `${cfg.max_duration_minutes} min` : ''
    ].filter(Boolean).join(', ');
    this._summary.replaceChildren(
      h('div', { class: 'jp-train-meta' }, `${cfg.sampling} sampling of ${names.map(paramLabel).join(', ') || 'no parameters'} · ${goalText(cfg)} · ${policySummary(cfg.policy)} · ${limits}`),
      h('div', { class: 'jp-train-sweep-counts', testid: 'jp-train-sweep-counts' }, countsText(sweepCounts(children, cfg))),
      h('div', { class: 'jp-train-sweep-best', testid: 'jp-train-sweep-best', 'data-run-id': best?.run.id ?? undefined },
        ...(best
          ? [`Best ${cfg.primary_metric_name} ${formatValue(best.value)} · ${formatHyperparameters(hyperparameters(best.run), names)} · `,
             this._link(best.run)]
          : [`No child has logged ${cfg.primary_metric_name} yet.`]))
    );
  }

  private _renderTable(children: IRun[], cfg: ISweepConfig, names: string[]): void {
    const now = Date.now() / 1000;
    const goal = cfg.primary_metric_goal === 'minimize' ? 'min' : 'max';
    const head = h('tr', {},
      h('th', {}, ''), h('th', {}, '#'), h('th', {}, 'Run'), h('th', {}, 'Status'),
      ...names.map(n => h('th', { class: 'jp-train-sweep-param', title: n }, paramLabel(n))),
      h('th', { title: `The best value of ${cfg.primary_metric_name} each child logged (${cfg.primary_metric_goal})` }, `${cfg.primary_metric_name} (${goal})`),
      h('th', {}, 'Duration'), h('th', {}, 'Stopped because'));
    const rows = children.map((c, i) => {
      const value = childMetric(c, cfg.primary_metric_name);
      const hp = hyperparameters(c);
      const note = cancelReason(c) || c.error || '';
      return h('tr', {
        'data-run-id': c.id,
        'data-rank': i + 1,
        'data-status': c.status,
        'data-metric': value === null ? '' : String(value),
        'data-stopped': isStopped(c) ? 'true' : undefined,
        class: i === 0 && value !== null ? 'jp-train-sweep-best-row' : undefined,
        onmouseenter: () => this._highlight(c.id),
        onmouseleave: () => this._highlight(null)
      },
      h('td', {}, h('span', { class: `jp-train-series-key jp-train-series-${i % 8}`, title: 'Its line in the metric chart' })),
      h('td', { class: 'jp-train-sweep-rank' }, value === null ? '—' : String(i + 1)),
      h('td', {}, this._link(c)),
      h('td', {}, statusBadge(c.status)),
      ...names.map(n => h('td', { class: 'jp-train-sweep-param', 'data-param': n }, formatParamValue(hp[n]))),
      h('td', { class: 'jp-train-sweep-metric' }, value === null ? '—' : formatValue(value)),
      h('td', {}, formatDuration(runDuration(c, now))),
      h('td', { class: 'jp-train-sweep-reason', title: note }, note));
    });
    this._table.replaceChildren(
      head,
      ...(rows.length ? rows : [h('tr', {}, h('td', { colspan: names.length + 7, class: 'jp-train-empty' }, 'No child runs yet: the sweep starts them as compute frees up.'))])
    );
  }

  private _link(run: IRun): HTMLElement {
    return h('a', { href: '#', title: `Open ${run.id}`, onclick: (ev: Event) => { ev.preventDefault(); this.ctx.openRun(run.id); } },
      run.tags?.display_name || run.id);
  }

  /** Pick out one child in the table and the parallel chart (null: none). */
  private _highlight(id: string | null): void {
    for (const e of Array.from(this.node.querySelectorAll('.jp-mod-highlight'))) {
      e.classList.remove('jp-mod-highlight');
    }
    if (id) {
      for (const e of Array.from(this.node.querySelectorAll(`[data-run-id="${id.replace(/["\\]/g, '\\$&')}"]`))) {
        if (e.closest('.jp-train-sweep-table, .jp-train-sweep-parallel')) {
          e.classList.add('jp-mod-highlight');
        }
      }
    }
  }

  private _parentRun: IRun | null = null;
  private _fetched = new Map<string, IRun>();
  private _series = new Map<string, ISeries>();
  private _seriesDone = new Set<string>();
  private _error = '';
  private _fetchedOnce = false;
  private _started = false;
  private _timer = 0;
  private _frame = 0;
  private _unsubscribe: () => void;
  private _header: HTMLDivElement;
  private _summary: HTMLDivElement;
  private _cancel: HTMLButtonElement;
  private _compare: HTMLButtonElement;
  private _table: HTMLTableElement;
  private _parallel: HTMLDivElement;
  private _metricChart: HTMLDivElement;
}
