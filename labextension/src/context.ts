import { Notification } from '@jupyterlab/apputils';
import { JupyterFrontEnd } from '@jupyterlab/application';

import { IInfo, TrainApi, TrainApiError } from './api';
import { isTerminal } from './contract';
import { RunsStore } from './runs';
import { isSweep } from './sweeps';

/** What the panel's widgets share: the API, the live run list and the app's actions. */
export interface ITrainContext {
  api: TrainApi;
  store: RunsStore;
  feed: EventsFeed;
  commands: JupyterFrontEnd['commands'];
  /** Server and workspace information (fetched once). */
  info(): Promise<IInfo>;
  openRun(id: string, tab?: string): void;
  compare(ids: string[]): void;
}

/** Show a failure as a notification carrying the server's message. */
export function notifyError(what: string, err: unknown): void {
  const message =
    err instanceof TrainApiError ? err.message : String((err as Error)?.message ?? err);
  Notification.error(`${what}: ${message}`, { autoClose: 8000 });
}

export function notifySuccess(message: string): void {
  Notification.success(message, { autoClose: 4000 });
}

/**
 * The workspace's events WebSocket (/train/api/events), feeding the RunsStore: a full list on
 * connect, then one message per changed run. Reconnects with backoff; while it is down,
 * ``poll`` keeps the store fresh over REST.
 */
export class EventsFeed {
  constructor(
    private readonly api: TrainApi,
    private readonly store: RunsStore
  ) {}

  get live(): boolean {
    return this._open;
  }

  /** Last error (connection or REST), '' when fine. */
  get error(): string {
    return this._error;
  }

  onChange(listener: () => void): () => void {
    this._listeners.add(listener);
    return () => this._listeners.delete(listener);
  }

  start(): void {
    if (this._socket || this._disposed) {
      return;
    }
    const WS = this.api.settings.WebSocket;
    const socket = new WS(this.api.wsUrl('events'));
    this._socket = socket;
    socket.onopen = () => {
      this._open = true;
      this._retry = 1000;
      this._error = '';
      this._stopPolling();
      this._emit();
    };
    socket.onmessage = (event: MessageEvent) => {
      try {
        this.store.applyMessage(JSON.parse(String(event.data)));
      } catch (err) {
        console.warn('jupyter-train: bad events message', err);
      }
    };
    socket.onclose = () => {
      const wasOpen = this._open;
      this._socket = null;
      this._open = false;
      if (this._disposed) {
        return;
      }
      if (wasOpen) {
        this._emit();
      }
      this._startPolling();
      window.setTimeout(() => this.start(), this._retry);
      this._retry = Math.min(this._retry * 2, 30000);
    };
  }

  /**
   * Fetch the list over REST now (the refresh button; a fallback while the socket is down): the
   * top-level runs, and the children of their sweeps (again only for a sweep still going or
   * whose children are not held yet).
   */
  async refresh(): Promise<void> {
    try {
      const runs = await this.api.runs(this.store.limit);
      const children = await Promise.all(
        runs.filter(isSweep).map(s => {
          const held = this.store.children(s.id);
          return isTerminal(s.status) && held.length && held.every(c => isTerminal(c.status))
            ? Promise.resolve(held)
            : this.api.children(s.id);
        })
      );
      this.store.reset([...runs, ...children.flat()]);
      this._error = '';
    } catch (err) {
      this._error = err instanceof TrainApiError ? err.message : String((err as Error)?.message ?? err);
      throw err;
    } finally {
      this._emit();
    }
  }

  dispose(): void {
    this._disposed = true;
    this._stopPolling();
    this._socket?.close();
    this._socket = null;
  }

  private _startPolling(): void {
    if (this._poll === null) {
      void this.refresh().catch(() => undefined);
      this._poll = window.setInterval(() => {
        if (!document.hidden) {
          void this.refresh().catch(() => undefined);
        }
      }, 5000);
    }
  }

  private _stopPolling(): void {
    if (this._poll !== null) {
      window.clearInterval(this._poll);
      this._poll = null;
    }
  }

  private _emit(): void {
    for (const l of Array.from(this._listeners)) {
      l();
    }
  }

  private _socket: WebSocket | null = null;
  private _open = false;
  private _retry = 1000;
  private _poll: number | null = null;
  private _error = '';
  private _disposed = false;
  private _listeners = new Set<() => void>();
}
