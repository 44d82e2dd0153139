/**
 * The left-sidebar panel: runs grouped by experiment (live, filterable, searchable, selectable
 * for comparison), compute targets with their nodes and queues, registered models and datasets,
 * deployed endpoints (web services) and environments.
 *
 * Stable hooks for browser tests: [data-testid=jp-train-sidebar] (data-live="true" while the
 * events feed is connected), jp-train-refresh, jp-train-compare-button, jp-train-search,
 * jp-train-experiment-filter, jp-train-status-filter (buttons with data-group),
 * jp-train-run-row (data-run-id, data-status; a sweep's child rows also data-parent-id),
 * jp-train-sweep-toggle (on a sweep's row: shows its child rows), jp-train-sweep-counts,
 * jp-train-run-select, jp-train-run-cancel, jp-train-computes, jp-train-models,
 * jp-train-datasets (a dataset's [data-dataset] with a [data-version] per version: data-files,
 * data-size, data-runs; its jp-train-dataset-runs links carry data-run-id),
 * jp-train-endpoints, jp-train-endpoint (data-service, data-state, data-requests, data-errors)
 * with its jp-train-endpoint-input, jp-train-endpoint-score, jp-train-endpoint-answer
 * (data-status, data-ok), jp-train-endpoint-log-toggle, jp-train-endpoint-log and
 * jp-train-endpoint-delete, jp-train-environments, jp-train-message.
 */

import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { ITrainContext, notifyError } from './context';
import { isTerminal } from './contract';
import { button, h, statusBadge } from './dom';
import { parametersLine } from './params';
import { EndpointsSection } from './endpointlist';
import { formatDuration, formatTime, formatValue } from './format';
import { trainIcon } from './icons';
import { renderComputes, renderDatasets, renderEnvironments, renderModels } from './resources';
import {
  experimentNames,
  groupByExperiment,
  IRun,
  IRunFilter,
  rowSignature,
  runDuration,
  STATUS_GROUPS,
  StatusGroup
} from './runs';
import { childRowParts, IRowParts, sweepRowParts } from './sweeprows';
import { hyperparameterNames, sortChildren, sweepConfig } from './sweeps';

export const SIDEBAR_ID = 'jupyter-train-sidebar';

/** How often compute, models, datasets, endpoints and environments refresh while shown. */
const SIDE_REFRESH_MS = 10000;

export class TrainSidebar extends Widget {
  constructor(private readonly ctx: ITrainContext) {
    super();
    this.id = SIDEBAR_ID;
    this.addClass('jp-train-sidebar');
    this.node.dataset.testid = 'jp-train-sidebar';
    this.title.icon = trainIcon;
    this.title.caption = 'Training: runs, compute, models, datasets';

    this._refresh = button('↻', () => void this.refresh(), { testid: 'jp-train-refresh', title: 'Reload everything', class: 'jp-train-button jp-train-icon-button' });
    this._compareButton = button('Compare', () => this.compareSelected(), { testid: 'jp-train-compare-button', title: 'Select two or more runs (checkboxes) to compare their metrics', disabled: true });
    this._message = h('div', { class: 'jp-train-message', testid: 'jp-train-message', role: 'status' });
    this._message.hidden = true;

    this._search = h('input', { type: 'search', class: 'jp-train-search', testid: 'jp-train-search', placeholder: 'Search runs: name, tag, key:value', 'aria-label': 'Search runs' });
    this._search.addEventListener('input', () => {
      this._filter = { ...this._filter, search: this._search.value };
      this._scheduleRender();
    });
    this._experiment = h('select', { class: 'jp-train-experiment-filter', testid: 'jp-train-experiment-filter', 'aria-label': 'Experiment' });
    this._experiment.addEventListener('change', () => {
      this._filter = { ...this._filter, experiment: this._experiment.value };
      this._scheduleRender();
    });
    const chips = h('div', { class: 'jp-train-status-filter', testid: 'jp-train-status-filter', role: 'group', 'aria-label': 'Status' });
    for (const group of STATUS_GROUPS) {
      const chip = h('button', { type: 'button', class: 'jp-train-chip', 'data-group': group, 'aria-pressed': 'false' }, group);
      chip.addEventListener('click', () => {
        const on = chip.getAttribute('aria-pressed') !== 'true';
        chip.setAttribute('aria-pressed', String(on));
        const statuses = new Set<StatusGroup>(this._filter.statuses);
        if (on) {
          statuses.add(group);
        } else {
          statuses.delete(group);
        }
        this._filter = { ...this._filter, statuses: STATUS_GROUPS.filter(g => statuses.has(g)) };
        this._scheduleRender();
      });
      chips.appendChild(chip);
    }
    this._runsList = h('div', { class: 'jp-train-runs', testid: 'jp-train-runs', role: 'list' });
    this._computes = h('div', { class: 'jp-train-computes', testid: 'jp-train-computes' });
    this._models = h('div', { class: 'jp-train-models', testid: 'jp-train-models' });
    this._datasets = h('div', { class: 'jp-train-datasets', testid: 'jp-train-datasets' });
    this._envs = h('div', { class: 'jp-train-environments', testid: 'jp-train-environments' });
    this._endpoints = new EndpointsSection(ctx, () => this.isVisible && !document.hidden, err => this._showError(err));
    this._updated = h('div', { class: 'jp-train-updated' });

    this.node.append(
      h('div', { class: 'jp-train-header' }, h('h2', { class: 'jp-train-heading' }, 'Training'), this._compareButton, this._refresh),
      this._message,
      section('Runs', 'runs', true, h('div', { class: 'jp-train-filters' }, this._search, this._experiment, chips), this._runsList),
      section('Compute', 'compute', true, this._computes),
      section('Models', 'models', false, this._models),
      section('Datasets', 'datasets', false, this._datasets),
      section('Endpoints', 'endpoints', false, this._endpoints.node),
      section('Environments', 'environments', false, this._envs),
      this._updated
    );

    this._unsubscribe = [
      ctx.store.subscribe(() => this._onRunsChanged()),
      ctx.feed.onChange(() => this._onFeedChanged())
    ];
    this._onFeedChanged();
  }

  /** Run ids ticked for comparison, in the order they were ticked. */
  get selected(): string[] {
    return Array.from(this._selected);
  }

  compareSelected(): void {
    if (this._selected.size >= 2) {
      this.ctx.compare(this.selected);
    }
  }

  /** Reload runs, compute, models, datasets, endpoints and environments over REST. */
  async refresh(): Promise<void> {
    this._refresh.disabled = true;
    try {
      await Promise.all([
        this.ctx.feed.refresh().catch(err => this._showError(err)),
        this._refreshSide()
      ]);
    } finally {
      this._refresh.disabled = false;
    }
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._unsubscribe.forEach(u => u());
    this._endpoints.dispose();
    window.clearInterval(this._ticker);
    window.clearInterval(this._sideTimer);
    super.dispose();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    this._render();
    this._ticker = window.setInterval(() => this._tick(), 1000);
    this._sideTimer = window.setInterval(() => {
      if (this.isVisible && !document.hidden) {
        void this._refreshSide();
      }
    }, SIDE_REFRESH_MS);
  }

  protected onBeforeDetach(msg: Message): void {
    window.clearInterval(this._ticker);
    window.clearInterval(this._sideTimer);
    super.onBeforeDetach(msg);
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this._refreshSide();
    this._render();
  }

  private _onFeedChanged(): void {
    if (this.ctx.feed.live) {
      this.node.dataset.live = 'true';
    } else {
      delete this.node.dataset.live;
    }
    const err = this.ctx.feed.error;
    if (err) {
      this._showError(err);
    } else if (this._message.classList.contains('jp-train-message-error')) {
      this._setMessage('');
    }
    this._updated.textContent = this.ctx.feed.live
      ? `Live since ${new Date().toLocaleTimeString()}`
      : `Reconnecting… (polling every 5 s) · ${new Date().toLocaleTimeString()}`;
  }

  private _onRunsChanged(): void {
    this._scheduleRender();
    // Node and queue counts move when runs change state: refresh them shortly after.
    const sig = this.ctx.store.runs.map(r => `${r.id}:${r.status}`).join();
    if (sig !== this._statusSig) {
      this._statusSig = sig;
      window.clearTimeout(this._sideSoon);
      this._sideSoon = window.setTimeout(() => void this._refreshSide(), 300);
    }
  }

  private _scheduleRender(): void {
    if (this._frame === 0) {
      this._frame = window.requestAnimationFrame(() => {
        this._frame = 0;
        this._render();
      });
    }
  }

  private _render(): void {
    if (this.isDisposed) {
      return;
    }
    const runs = this.ctx.store.runs;
    this._renderExperimentOptions(runs);
    for (const id of Array.from(this._selected)) {
      if (!this.ctx.store.get(id)) {
        this._selected.delete(id);
      }
    }
    this._updateCompareButton();
    const groups = groupByExperiment(runs, this._filter);
    if (!runs.length) {
      this._runsList.replaceChildren(h('p', { class: 'jp-train-empty' },
        'No runs yet. Submit one from a notebook (%%train, or Experiment.submit) and it appears here.'));
      return;
    }
    if (!groups.length) {
      this._runsList.replaceChildren(h('p', { class: 'jp-train-empty' }, 'No run matches the filter.'));
      return;
    }
    const now = Date.now() / 1000;
    this._rowsSeen.clear();
    this._runsList.replaceChildren(
      ...groups.map(g => {
        const collapsed = this._collapsed.has(g.experiment);
        const head = h('button', {
          type: 'button',
          class: 'jp-train-group-head',
          'aria-expanded': String(!collapsed),
          onclick: () => {
            if (this._collapsed.has(g.experiment)) {
              this._collapsed.delete(g.experiment);
            } else {
              this._collapsed.add(g.experiment);
            }
            this._render();
          }
        },
        h('span', { class: 'jp-train-caret' }, collapsed ? '▸' : '▾'),
        h('span', { class: 'jp-train-group-name' }, g.experiment),
        h('span', { class: 'jp-train-group-count' }, `${g.runs.length}${g.active ? ` · ${g.active} active` : ''}`));
        return h('div', { class: 'jp-train-experiment-group', 'data-experiment': g.experiment, role: 'listitem' },
          head,
          collapsed ? null : h('div', { class: 'jp-train-group-runs' }, ...g.runs.map(r => this._entry(r, now))));
      })
    );
    for (const id of Array.from(this._rows.keys())) {
      if (!this._rowsSeen.has(id)) {
        this._rows.delete(id); // not shown now (filtered out, gone): built anew when it is
      }
    }
  }

  /** A run's row; a sweep's row with, when opened, its children's rows under it. */
  private _entry(run: IRun, now: number): HTMLElement {
    const cfg = sweepConfig(run);
    if (!cfg) {
      return this._row(run, now);
    }
    const open = this._expanded.has(run.id);
    const children = sortChildren(this.ctx.store.children(run.id), cfg);
    const toggle = h('button', {
      type: 'button',
      class: 'jp-train-sweep-toggle',
      testid: 'jp-train-sweep-toggle',
      'aria-expanded': String(open),
      'aria-label': `${open ? 'Hide' : 'Show'} the child runs of ${run.id}`,
      title: open ? 'Hide the child runs' : 'Show the child runs',
      onclick: (ev: Event) => {
        ev.stopPropagation();
        if (!this._expanded.delete(run.id)) {
          this._expanded.add(run.id);
        }
        this._render();
      }
    }, open ? '▾' : '▸');
    const names = hyperparameterNames(children, cfg);
    const row = this._row(run, now, { lead: toggle, ...sweepRowParts(run, cfg, children) });
    return h('div', { class: 'jp-train-sweep', 'data-sweep-id': run.id },
      row,
      open
        ? h('div', { class: 'jp-train-sweep-children', role: 'group', 'aria-label': `Child runs of ${run.id}` },
            ...(children.length
              ? children.map(c => this._row(c, now, childRowParts(c, names)))
              : [h('p', { class: 'jp-train-empty' }, 'No child runs yet.')]))
        : null);
  }

  /**
   * A run's row. A plain row whose content is unchanged is the same element as last time: a
   * render while the list updates (another run changing state) must not replace the row under
   * a click (a click whose mousedown and mouseup land on different elements is lost).
   */
  private _row(run: IRun, now: number, parts: IRowParts = {}): HTMLElement {
    const plain = Object.keys(parts).length === 0;
    const sig = plain ? rowSignature(run, this._selected.has(run.id)) : '';
    const kept = plain ? this._rows.get(run.id) : undefined;
    if (kept && kept.sig === sig) {
      this._rowsSeen.add(run.id);
      return kept.node;
    }
    const row = this._buildRow(run, now, parts);
    if (plain) {
      this._rows.set(run.id, { sig, node: row });
      this._rowsSeen.add(run.id);
    }
    return row;
  }

  private _buildRow(run: IRun, now: number, parts: IRowParts): HTMLElement {
    const select = parts.lead ?? this._select(run);
    const name = run.tags?.display_name || shortId(run);
    const primary = run.primary_metric;
    // a sweep's rows say their hyperparameters their own way (sweeprows.ts)
    const paramsLine = Object.keys(parts).length === 0 ? parametersLine(run) : '';
    const cancel = isTerminal(run.status)
      ? null
      : h('button', {
          type: 'button',
          class: 'jp-train-run-cancel',
          testid: 'jp-train-run-cancel',
          title: `Cancel ${run.id}`,
          'aria-label': `Cancel ${run.id}`,
          onclick: (ev: Event) => {
            ev.stopPropagation();
            this.ctx.api.cancel(run.id).then(r => this.ctx.store.upsert(r), err => notifyError(`Could not cancel ${run.id}`, err));
          }
        }, '■');
    const row = h('div', {
      class: `jp-train-run-row${parts.className ? ` ${parts.className}` : ''}`,
      testid: 'jp-train-run-row',
      'data-run-id': run.id,
      'data-status': run.status,
      'data-parent-id': run.parent_id ?? undefined,
      role: 'button',
      tabindex: 0,
      title: `${run.id}\n${run.status}${run.error ? `\n${run.error}` : ''}${parts.title ? `\n${parts.title}` : ''}`,
      onclick: () => this.ctx.openRun(run.id),
      onkeydown: (ev: KeyboardEvent) => {
        if (ev.key === 'Enter') {
          this.ctx.openRun(run.id);
        }
      }
    },
    select,
    statusBadge(run.status),
    h('span', { class: 'jp-train-run-name' }, name,
      run.tags?.display_name ? h('span', { class: 'jp-train-run-id' }, ` ${shortId(run)}`) : null),
    h('span', { class: 'jp-train-run-time', title: new Date(run.created_at * 1000).toLocaleString() }, formatTime(run.created_at, true)),
    h('span', { class: 'jp-train-run-duration', 'data-duration': run.id }, formatDuration(runDuration(run, now))),
    parts.metric ?? h('span', { class: 'jp-train-run-metric', testid: 'jp-train-run-metric', title: primary ? `${primary.name} ${formatValue(primary.value)} (step ${primary.step ?? '—'})` : '' },
      primary ? `${primary.name} ${formatValue(primary.value)}` : ''),
    paramsLine ? h('span', { class: 'jp-train-run-params', testid: 'jp-train-run-params', title: paramsLine }, paramsLine) : null,
    cancel,
    ...(parts.extra ?? []));
    for (const [k, v] of Object.entries(parts.data ?? {})) {
      row.setAttribute(`data-${k}`, v);
    }
    return row;
  }

  private _select(run: IRun): HTMLInputElement {
    const select = h('input', { type: 'checkbox', class: 'jp-train-run-select', testid: 'jp-train-run-select', title: 'Select to compare', 'aria-label': `Select ${run.id}` });
    select.checked = this._selected.has(run.id);
    select.addEventListener('click', ev => ev.stopPropagation());
    select.addEventListener('change', () => {
      if (select.checked) {
        this._selected.add(run.id);
      } else {
        this._selected.delete(run.id);
      }
      this._updateCompareButton();
    });
    return select;
  }

  private _tick(): void {
    if (!this.isVisible) {
      return;
    }
    const now = Date.now() / 1000;
    for (const cell of Array.from(this._runsList.querySelectorAll<HTMLElement>('[data-duration]'))) {
      const run = this.ctx.store.get(cell.dataset.duration ?? '');
      if (run && !isTerminal(run.status)) {
        cell.textContent = formatDuration(runDuration(run, now));
      }
    }
  }

  private _renderExperimentOptions(runs: ReadonlyArray<IRun>): void {
    const names = experimentNames(runs);
    const key = names.join('\n');
    if (key === this._experimentsKey) {
      return;
    }
    this._experimentsKey = key;
    const current = this._experiment.value;
    this._experiment.replaceChildren(
      h('option', { value: '' }, 'All experiments'),
      ...names.map(n => h('option', { value: n }, n))
    );
    this._experiment.value = names.includes(current) ? current : '';
    if (this._experiment.value !== this._filter.experiment) {
      this._filter = { ...this._filter, experiment: this._experiment.value };
    }
  }

  private _updateCompareButton(): void {
    const n = this._selected.size;
    this._compareButton.disabled = n < 2;
    this._compareButton.textContent = n ? `Compare (${n})` : 'Compare';
  }

  private async _refreshSide(): Promise<void> {
    const [computes, models, datasets, envs, endpoints] = await Promise.allSettled([
      this.ctx.api.computes(),
      this.ctx.api.models(),
      this.ctx.api.datasets(),
      this.ctx.api.environments(),
      this._endpoints.refresh()
    ]);
    if (this.isDisposed) {
      return;
    }
    if (computes.status === 'fulfilled') {
      renderComputes(this._computes, computes.value, id => this.ctx.openRun(id));
    }
    if (models.status === 'fulfilled') {
      renderModels(this._models, models.value, id => this.ctx.openRun(id));
    }
    if (datasets.status === 'fulfilled') {
      // drawn again only when the list changed: a redraw under a click on a run link loses it
      const key = JSON.stringify(datasets.value);
      if (key !== this._datasetsKey) {
        this._datasetsKey = key;
        renderDatasets(this._datasets, datasets.value, id => this.ctx.openRun(id));
      }
    }
    if (envs.status === 'fulfilled') {
      renderEnvironments(this._envs, envs.value);
    }
    const failed = [computes, models, datasets, envs, endpoints].find(r => r.status === 'rejected') as PromiseRejectedResult | undefined;
    if (failed) {
      this._showError(failed.reason);
    }
  }

  private _showError(err: unknown): void {
    const text = typeof err === 'string' ? err : String((err as Error)?.message ?? err);
    if (text !== this._lastError) {
      this._lastError = text;
      notifyError('jupyter-train', text);
    }
    this._setMessage(text, true);
  }

  private _setMessage(text: string, isError = false): void {
    if (!isError) {
      this._lastError = '';
    }
    this._message.textContent = text;
    this._message.hidden = text === '';
    this._message.classList.toggle('jp-train-message-error', isError);
    this._message.setAttribute('role', isError ? 'alert' : 'status');
  }

  private _filter: IRunFilter = { statuses: [], experiment: '', search: '' };
  private _selected = new Set<string>();
  private _collapsed = new Set<string>();
  private _rows = new Map<string, { sig: string; node: HTMLElement }>(); // plain rows, for reuse
  private _rowsSeen = new Set<string>(); // the rows the render under way has placed
  /** Sweeps whose child runs show under their row. */
  private _expanded = new Set<string>();
  private _experimentsKey = '';
  private _datasetsKey = '';
  private _statusSig = '';
  private _lastError = '';
  private _frame = 0;
  private _ticker = 0;
  private _sideTimer = 0;
  private _sideSoon = 0;
  private _unsubscribe: Array<() => void>;
  private _refresh: HTMLButtonElement;
  private _compareButton: HTMLButtonElement;
  private _message: HTMLDivElement;
  private _search: HTMLInputElement;
  private _experiment: HTMLSelectElement;
  private _runsList: HTMLDivElement;
  private _computes: HTMLDivElement;
  private _models: HTMLDivElement;
  private _datasets: HTMLDivElement;
  private _envs: HTMLDivElement;
  private _endpoints: EndpointsSection;
  private _updated: HTMLDivElement;
}

function section(title: string, key: string, open: boolean, ...body: HTMLElement[]): HTMLElement {
  return h('details', { class: 'jp-train-section', 'data-section': key, open },
    h('summary', { class: 'jp-train-section-title' }, title), ...body);
}

/** The id without its experiment prefix ("exp_1700000000_ab12cd34" -> "1700000000_ab12cd34"). */
function shortId(run: IRun): string {
  return run.id.startsWith(`${run.experiment}_`) ? run.id.slice(run.experiment.length + 1) : run.id;
}
