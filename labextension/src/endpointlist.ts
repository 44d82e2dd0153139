/**
 * The sidebar's Endpoints section: each deployed web service (GET /services) with its state,
 * scoring URI, models and traffic, a try-it box that scores through the server, its log, and
 * delete. A service's item is kept across refreshes (only its summary is redrawn), so what is
 * typed in its box, its last answer and its open log stay.
 */

import { Dialog, showDialog } from '@jupyterlab/apputils';

import { ITrainContext, notifyError, notifySuccess } from './context';
import { button, h, statusBadge } from './dom';
import {
  answerView,
  DEFAULT_INPUT,
  IAnswerView,
  IService,
  needsQuickRefresh,
  serviceSummary,
  serviceTraffic
} from './endpoints';
import { formatDuration, formatTime } from './format';

/** How often the list refreshes while a service is Transitioning or Unhealthy. */
const BUSY_REFRESH_MS = 2000;
/** After a score, when its request shows in the counts (the service writes them every 0.5 s). */
const AFTER_SCORE_MS = 1000;

export class EndpointsSection {
  /**
   * ``isShown``: whether the panel is on screen (quick refreshes wait otherwise); ``onError``:
   * where a refresh the section starts itself reports its failure.
   */
  constructor(
    private readonly ctx: ITrainContext,
    private readonly isShown: () => boolean,
    private readonly onError: (err: unknown) => void
  ) {}

  readonly node = h('div', { class: 'jp-train-endpoints', testid: 'jp-train-endpoints' });

  /** Fetch the services and draw them; rejects when the list cannot be fetched. */
  async refresh(): Promise<void> {
    const asked = ++this._asked;
    const services = await this.ctx.api.services();
    // An answer to an older request that comes last (a refresh started before a delete) is stale.
    if (!this._disposed && asked > this._drawn) {
      this._drawn = asked;
      this._render(services);
    }
  }

  dispose(): void {
    this._disposed = true;
    window.clearTimeout(this._timer);
  }

  private _render(services: IService[]): void {
    const names = new Set(services.map(s => s.name));
    for (const [name, item] of Array.from(this._items)) {
      if (!names.has(name)) {
        item.node.remove();
        this._items.delete(name);
      }
    }
    if (!services.length) {
      this.node.replaceChildren(
        h('p', { class: 'jp-train-empty' }, 'No endpoints yet. Deploy a model with Model.deploy(...).'));
      return;
    }
    this.node.querySelector(':scope > .jp-train-empty')?.remove();
    // Insert new items in place; the others are not moved (a focused box would lose its focus).
    services.forEach((svc, i) => {
      let item = this._items.get(svc.name);
      if (!item) {
        item = new EndpointItem(this.ctx, svc.name, this._inputs, ms => this._refreshIn(ms));
        this._items.set(svc.name, item);
      }
      item.update(svc);
      const at = this.node.children[i] ?? null;
      if (at !== item.node) {
        this.node.insertBefore(item.node, at);
      }
    });
    if (needsQuickRefresh(services)) {
      this._refreshIn(BUSY_REFRESH_MS);
    }
  }

  private _refreshIn(ms: number): void {
    window.clearTimeout(this._timer);
    this._timer = window.setTimeout(() => {
      if (this.isShown()) {
        this.refresh().catch(err => this.onError(err));
      }
    }, ms);
  }

  private _items = new Map<string, EndpointItem>();
  /** The last input scored per service name, for a box drawn again (a service deployed anew). */
  private _inputs = new Map<string, string>();
  private _disposed = false;
  private _timer = 0;
  /** Requests for the list made, and the latest one drawn. */
  private _asked = 0;
  private _drawn = 0;
}

/**
 * One service: its summary lines (redrawn on update), the try-it box, the log, delete.
 * ``refreshIn``: have the section fetch the list again after so many milliseconds.
 */
class EndpointItem {
  constructor(
    private readonly ctx: ITrainContext,
    readonly name: string,
    private readonly inputs: Map<string, string>,
    private readonly refreshIn: (ms: number) => void
  ) {
    this._input = h('textarea', {
      class: 'jp-train-endpoint-input',
      testid: 'jp-train-endpoint-input',
      rows: 3,
      spellcheck: 'false',
      title: 'What the entry script’s run() receives (usually JSON); Ctrl+Enter scores it',
      'aria-label': `Input to score with ${name}`,
      onkeydown: (ev: KeyboardEvent) => {
        if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) {
          ev.preventDefault();
          void this._score();
        }
      }
    });
    this._input.value = inputs.get(name) ?? DEFAULT_INPUT;
    this._scoreButton = button('Score', () => void this._score(), {
      testid: 'jp-train-endpoint-score',
      title: `POST the input to ${name} (what its run() receives)`
    });
    this._answer = h('div', {
      class: 'jp-train-endpoint-answer',
      testid: 'jp-train-endpoint-answer',
      'aria-live': 'polite'
    });
    this._answer.hidden = true;
    this._logToggle = button('Log', () => void this._toggleLog(), {
      testid: 'jp-train-endpoint-log-toggle',
      title: `Show the log of ${name}`,
      'aria-pressed': 'false'
    });
    this._deleteButton = button('Delete', () => void this._delete(), {
      testid: 'jp-train-endpoint-delete',
      title: `Stop ${name} and forget it`,
      class: 'jp-train-button jp-mod-styled jp-train-endpoint-delete'
    });
    this._log = h('pre', { class: 'jp-train-endpoint-log', testid: 'jp-train-endpoint-log' });
    this._logBox = h('div', { class: 'jp-train-endpoint-logbox' },
      h('div', { class: 'jp-train-endpoint-logbar' },
        h('span', {}, 'Log'),
        button('↻', () => void this._loadLog(), {
          title: 'Reload the log',
          'aria-label': `Reload the log of ${name}`,
          class: 'jp-train-button jp-train-icon-button'
        })),
      this._log);
    this._logBox.hidden = true;
    this.node = h('div', { class: 'jp-train-endpoint', testid: 'jp-train-endpoint', 'data-service': name },
      this._summary,
      h('div', { class: 'jp-train-endpoint-try' },
        this._input,
        h('div', { class: 'jp-train-endpoint-actions' }, this._scoreButton, this._logToggle, this._deleteButton)),
      this._answer,
      this._logBox);
  }

  readonly node: HTMLDivElement;

  update(svc: IService): void {
    this._runId = svc.run_id;
    this.node.dataset.state = svc.state;
    this.node.dataset.requests = String(svc.requests);
    this.node.dataset.errors = String(svc.errors ?? 0);
    this._summary.replaceChildren(
      h('div', { class: 'jp-train-endpoint-head' },
        statusBadge(svc.state),
        h('span', { class: 'jp-train-endpoint-name', title: svc.description ?? '' }, svc.name),
        h('a', {
          href: '#',
          class: 'jp-train-endpoint-run',
          title: `The run that serves it: ${svc.run_id} (${svc.run_status ?? ''})`,
          onclick: (ev: Event) => {
            ev.preventDefault();
            this.ctx.openRun(svc.run_id);
          }
        }, 'Open run')),
      h('div', { class: 'jp-train-endpoint-uri', title: 'Its scoring URI, on the server’s machine' }, svc.scoring_uri),
      h('div', { class: 'jp-train-endpoint-info' }, serviceSummary(svc)),
      h('div', {
        class: 'jp-train-endpoint-traffic',
        title: svc.last_request_at ? `Last request ${formatTime(svc.last_request_at)}` : ''
      }, serviceTraffic(svc)),
      ...(svc.error ? [h('div', { class: 'jp-train-endpoint-error', role: 'alert' }, svc.error)] : []));
  }

  private async _score(): Promise<void> {
    if (this._scoreButton.disabled) {
      return; // one request at a time
    }
    const input = this._input.value;
    this.inputs.set(this.name, input);
    this._scoreButton.disabled = true;
    this._answer.hidden = false;
    delete this._answer.dataset.status;
    delete this._answer.dataset.ok;
    this._answer.replaceChildren(h('div', { class: 'jp-train-endpoint-answer-head' }, 'Scoring…'));
    const t0 = performance.now();
    let view: IAnswerView;
    try {
      view = answerView(await this.ctx.api.score(this.name, input), (performance.now() - t0) / 1000);
    } catch (err) {
      view = {
        ok: false,
        head: `No answer · ${formatDuration((performance.now() - t0) / 1000)}`,
        message: String((err as Error)?.message ?? err),
        detail: ''
      };
    } finally {
      this._scoreButton.disabled = false;
    }
    this._showAnswer(view);
    this.refreshIn(AFTER_SCORE_MS);
  }

  private _showAnswer(view: IAnswerView): void {
    this._answer.dataset.ok = String(view.ok);
    if (view.status !== undefined) {
      this._answer.dataset.status = String(view.status);
    }
    this._answer.replaceChildren(
      h('div', { class: 'jp-train-endpoint-answer-head' }, view.head),
      ...(view.message ? [h('div', { class: 'jp-train-endpoint-answer-message' }, view.message)] : []),
      ...(view.detail ? [h('pre', { class: 'jp-train-endpoint-answer-detail' }, view.detail)] : []));
  }

  private async _toggleLog(): Promise<void> {
    const open = this._logBox.hidden;
    this._logBox.hidden = !open;
    this._logToggle.setAttribute('aria-pressed', String(open));
    if (open) {
      await this._loadLog();
    }
  }

  private async _loadLog(): Promise<void> {
    try {
      const text = await this.ctx.api.serviceLogs(this.name);
      this._log.textContent = text || '(empty)';
      this._log.scrollTop = this._log.scrollHeight;
    } catch (err) {
      notifyError(`Could not load the log of ${this.name}`, err);
    }
  }

  private async _delete(): Promise<void> {
    const result = await showDialog({
      title: `Delete ${this.name}?`,
      body: `The service stops (its run ${this._runId} is canceled) and its scoring URI stops answering.`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
    });
    if (!result.button.accept) {
      return;
    }
    this._deleteButton.disabled = true;
    this.node.dataset.deleting = 'true';
    try {
      await this.ctx.api.deleteService(this.name);
      notifySuccess(`Deleted ${this.name}`);
      this.refreshIn(0);
    } catch (err) {
      notifyError(`Could not delete ${this.name}`, err);
      this._deleteButton.disabled = false;
      delete this.node.dataset.deleting;
    }
  }

  private _runId = '';
  private _summary = h('div', { class: 'jp-train-endpoint-summary' });
  private _input: HTMLTextAreaElement;
  private _scoreButton: HTMLButtonElement;
  private _answer: HTMLDivElement;
  private _logToggle: HTMLButtonElement;
  private _deleteButton: HTMLButtonElement;
  private _log: HTMLPreElement;
  private _logBox: HTMLDivElement;
}
