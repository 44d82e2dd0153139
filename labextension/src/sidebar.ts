import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { LabIcon } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { fetchRuns, IRunSummary, TrainApiError } from './api';

export const SIDEBAR_ID = 'jupyter-train-sidebar';

/** How often the list refreshes while the panel is visible. */
export const REFRESH_INTERVAL_MS = 5000;

/** How many runs to ask the server for. */
export const RUN_LIMIT = 50;

const trainIconSvg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M3 3h2v16h16v2H3z"/>
    <path d="M7 15.6l4.1-4.6 3 2.6 4.6-6.1 1.6 1.2-5.9 7.9-3-2.6-2.9 3.3z"/>
  </g>
</svg>`;

export const trainIcon = new LabIcon({
  name: 'jupyter-train:runs',
  svgstr: trainIconSvg
});

export namespace RunsSidebar {
  export interface IOptions {
    serverSettings: ServerConnection.ISettings;
    /** Auto-refresh period in ms (default 5000). */
    refreshInterval?: number;
  }
}

/**
 * Plain-DOM Lumino widget showing a table of recent runs.
 *
 * Test hooks (stable for browser tests):
 *   - root:        .jp-train-sidebar            [data-testid="jp-train-sidebar"]
 *   - refresh:     .jp-train-refresh            [data-testid="jp-train-refresh"]
 *   - message:     .jp-train-message            [data-testid="jp-train-message"]
 *                  (+ .jp-train-message-error on failure)
 *   - table:       .jp-train-runs-table         [data-testid="jp-train-runs-table"]
 *   - row:         tr.jp-train-run-row          [data-testid="jp-train-run-row"][data-run-id]
 */
export class RunsSidebar extends Widget {
  constructor(options: RunsSidebar.IOptions) {
    super();
    this._settings = options.serverSettings;
    this._interval = options.refreshInterval ?? REFRESH_INTERVAL_MS;

    this.id = SIDEBAR_ID;
    this.addClass('jp-train-sidebar');
    this.node.dataset.testid = 'jp-train-sidebar';
    this.title.icon = trainIcon;
    this.title.caption = 'Training runs';

    const header = document.createElement('div');
    header.className = 'jp-train-header';
    const heading = document.createElement('h2');
    heading.className = 'jp-train-heading';
    heading.textContent = 'Training runs';
    this._refreshButton = document.createElement('button');
    this._refreshButton.type = 'button';
    this._refreshButton.className = 'jp-train-refresh jp-mod-styled';
    this._refreshButton.dataset.testid = 'jp-train-refresh';
    this._refreshButton.textContent = 'Refresh';
    this._refreshButton.title = 'Reload the list of runs';
    this._refreshButton.addEventListener('click', () => void this.refresh());
    header.append(heading, this._refreshButton);

    this._message = document.createElement('div');
    this._message.className = 'jp-train-message';
    this._message.dataset.testid = 'jp-train-message';
    this._message.setAttribute('role', 'status');

    this._table = document.createElement('table');
    this._table.className = 'jp-train-runs-table';
    this._table.dataset.testid = 'jp-train-runs-table';
    const thead = this._table.createTHead();
    const headRow = thead.insertRow();
    for (const label of ['Run', 'Experiment', 'Status', 'Created']) {
      const th = document.createElement('th');
      th.textContent = label;
      headRow.appendChild(th);
    }
    this._tbody = this._table.createTBody();

    this._updated = document.createElement('div');
    this._updated.className = 'jp-train-updated';

    this.node.append(header, this._message, this._table, this._updated);
    this._setMessage('Loading runs…');
  }

  /** Runs shown by the last successful refresh. */
  get runs(): ReadonlyArray<IRunSummary> {
    return this._runs;
  }

  /**
   * Fetch runs and re-render. Concurrent calls share one request.
   */
  refresh(): Promise<void> {
    if (this.isDisposed) {
      return Promise.resolve();
    }
    if (!this._pending) {
      this._pending = this._doRefresh().finally(() => {
        this._pending = null;
      });
    }
    return this._pending;
  }

  /**
   * Follow the workspace's run changes over the server's WebSocket (/train/api/events):
   * rows update in place as runs are created or change state; polling runs only while the
   * socket is down.
   */
  private _connectFeed(): void {
    if (this.isDisposed || this._feed) {
      return;
    }
    let url = URLExt.join(this._settings.wsUrl, 'train/api/events');
    if (this._settings.token) {
      url += `?token=${encodeURIComponent(this._settings.token)}`;
    }
    const WS = this._settings.WebSocket;
    const feed = new WS(url);
    this._feed = feed;
    feed.onopen = () => {
      this._feedOpen = true;
      this.node.dataset.live = 'true';
      this._stopTimer();
    };
    feed.onmessage = (event: MessageEvent) => {
      const msg = JSON.parse(String(event.data));
      if (msg.type === 'runs') {
        this._runs = msg.runs as IRunSummary[];
      } else if (msg.type === 'run') {
        const run = msg.run as IRunSummary;
        this._runs = [run, ...this._runs.filter(r => r.id !== run.id)]
          .sort((a, b) => Number(b.created_at ?? 0) - Number(a.created_at ?? 0))
          .slice(0, RUN_LIMIT);
      } else {
        return;
      }
      this._renderRuns(this._runs);
      this._setMessage(this._runs.length ? '' : 'No runs yet.');
      this._updated.textContent = `Live · updated ${new Date().toLocaleTimeString()}`;
    };
    feed.onclose = () => {
      this._feed = null;
      this._feedOpen = false;
      delete this.node.dataset.live;
      if (!this.isDisposed) {
        if (this.isVisible) {
          this._startTimer();
        }
        window.setTimeout(() => this._connectFeed(), 2000);
      }
    };
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    const feed = this._feed;
    this._feed = null;
    feed?.close();
    this._stopTimer();
    this._abort?.abort();
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this.refresh();
    this._startTimer();
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this._stopTimer();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    this._connectFeed();
    if (this.isVisible) {
      void this.refresh();
      this._startTimer();
    }
  }

  protected onBeforeDetach(msg: Message): void {
    this._stopTimer();
    super.onBeforeDetach(msg);
  }

  private _startTimer(): void {
    if (this._timer === null && !this._feedOpen) {
      this._timer = window.setInterval(() => {
        if (this.isVisible && !document.hidden) {
          void this.refresh();
        }
      }, this._interval);
    }
  }

  private _stopTimer(): void {
    if (this._timer !== null) {
      window.clearInterval(this._timer);
      this._timer = null;
    }
  }

  private async _doRefresh(): Promise<void> {
    const abort = new AbortController();
    this._abort = abort;
    this._refreshButton.disabled = true;
    this.node.setAttribute('aria-busy', 'true');
    try {
      const runs = await fetchRuns(this._settings, RUN_LIMIT, abort.signal);
      if (this.isDisposed) {
        return;
      }
      this._runs = runs;
      this._renderRuns(runs);
      this._setMessage(runs.length ? '' : 'No runs yet.');
      this._updated.textContent = `${this._feedOpen ? 'Live · updated' : 'Updated'} ${new Date().toLocaleTimeString()}`;
    } catch (err) {
      if (this.isDisposed || abort.signal.aborted) {
        return;
      }
      const message =
        err instanceof TrainApiError
          ? err.message
          : `Failed to load runs: ${(err as Error)?.message ?? err}`;
      // Keep the last good table visible but make the failure obvious.
      this._setMessage(message, true);
      if (err instanceof TrainApiError) {
        this._message.dataset.errorKind = err.kind;
        if (err.errorCode) {
          this._message.dataset.errorCode = err.errorCode;
        }
      }
    } finally {
      if (!this.isDisposed) {
        this._refreshButton.disabled = false;
        this.node.removeAttribute('aria-busy');
      }
      if (this._abort === abort) {
        this._abort = null;
      }
    }
  }

  private _setMessage(text: string, isError = false): void {
    this._message.textContent = text;
    this._message.hidden = text === '';
    this._message.classList.toggle('jp-train-message-error', isError);
    if (isError) {
      this._message.setAttribute('role', 'alert');
    } else {
      this._message.setAttribute('role', 'status');
      delete this._message.dataset.errorKind;
      delete this._message.dataset.errorCode;
    }
  }

  private _renderRuns(runs: IRunSummary[]): void {
    const rows = runs.map(run => {
      const tr = document.createElement('tr');
      tr.className = 'jp-train-run-row';
      tr.dataset.testid = 'jp-train-run-row';
      tr.dataset.runId = String(run.id);
      tr.dataset.status = String(run.status ?? '');

      const id = tr.insertCell();
      id.className = 'jp-train-run-id';
      id.textContent = String(run.id);
      id.title = String(run.id);

      const experiment = tr.insertCell();
      experiment.className = 'jp-train-run-experiment';
      experiment.textContent = String(run.experiment ?? '');

      const status = tr.insertCell();
      const statusText = String(run.status ?? 'unknown');
      status.className = `jp-train-run-status jp-train-status-${statusText
        .toLowerCase()
        .replace(/[^a-z0-9_-]/g, '')}`;
      status.textContent = statusText;

      const created = tr.insertCell();
      created.className = 'jp-train-run-created';
      const date =
        typeof run.created_at === 'number' && isFinite(run.created_at)
          ? new Date(run.created_at * 1000)
          : null;
      created.textContent = date ? date.toLocaleString() : '';
      created.title = date ? date.toISOString() : '';
      return tr;
    });
    this._tbody.replaceChildren(...rows);
    this._table.hidden = runs.length === 0;
  }

  private _settings: ServerConnection.ISettings;
  private _feed: WebSocket | null = null;
  private _feedOpen = false;
  private _interval: number;
  private _timer: number | null = null;
  private _pending: Promise<void> | null = null;
  private _abort: AbortController | null = null;
  private _runs: IRunSummary[] = [];
  private _refreshButton: HTMLButtonElement;
  private _message: HTMLDivElement;
  private _table: HTMLTableElement;
  private _tbody: HTMLTableSectionElement;
  private _updated: HTMLDivElement;
}
