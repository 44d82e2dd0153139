import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { IDataset } from './datasets';
import { IScoreResponse, IService, IServiceDeleted } from './endpoints';
import { IMetricPoint, IMetricSeriesView } from './metrics';
import { IRun } from './runs';
import { ISweepSummary } from './sweeps';

/** REST prefix of the server extension, relative to the server base URL. */
export const API_PREFIX = 'train/api';

/**
 * Error raised for any failure talking to the jupyter-train server extension; ``message`` is
 * the server's own message where it sent one.
 */
export class TrainApiError extends Error {
  constructor(
    message: string,
    readonly kind: 'unreachable' | 'not-installed' | 'server' | 'bad-response',
    readonly status?: number,
    readonly errorCode?: string
  ) {
    super(message);
    this.name = 'TrainApiError';
  }
}

export interface IInfo {
  version: string;
  workspace: string;
  pid: number;
  contents_path?: string | null;
}

export interface ICompute {
  name: string;
  kind: string;
  state: string;
  nodes: number;
  cpus?: number;
  gpus?: number;
  vm_size?: string;
  min_nodes?: number;
  max_nodes?: number;
  node_counts: { idle?: number; busy?: number; preparing?: number; unusable?: number };
  queue: string[];
  base_url?: string;
  engine?: string;
  containers?: number;
  address?: string;
  ray?: IRayStatus;
}

/** A Ray target's cluster, as its probe last saw it. */
export interface IRayStatus {
  state: string; // connecting | ready | unreachable | not started
  nodes: IRayNode[];
  error?: string | null;
  requested?: Record<string, number>[];
  pending_nodes?: number;
  waiting_placement_groups?: number;
  request_error?: string | null;
}

export interface IRayNode {
  node_id: string;
  address: string;
  state: string; // busy | idle | alive
  resources: Record<string, number>;
  used?: Record<string, number>;
  idle_s?: number | null;
}

export interface IModel {
  name: string;
  version: number;
  run_id?: string | null;
  path: string;
  source_path?: string | null;
  tags: Record<string, string>;
  properties: Record<string, unknown>;
  description?: string | null;
  created_at: number;
  files?: string[];
  experiment?: string | null;
  framework?: string | null;
  framework_version?: string | null;
  checksum?: string | null;
  size?: number | null;
}

export interface IEnvironment {
  name: string;
  version?: number | null;
  python_version?: string | null;
  pip_packages?: string[];
  conda_packages?: string[];
  curated?: boolean;
  build_state?: string;
}

export interface ILogChunk {
  name: string;
  offset: number;
  next_offset: number;
  size: number;
  text: string;
  eof: boolean;
}

export interface IRequestOptions {
  /** A JSON body. */
  body?: unknown;
  /** A body sent as it is, in place of ``body``. */
  text?: string;
  query?: Record<string, unknown>;
  signal?: AbortSignal;
}

/**
 * Typed calls to /train/api (see jupyter_ext/openapi.yaml), with the Jupyter server's auth.
 */
export class TrainApi {
  constructor(readonly settings: ServerConnection.ISettings) {}

  url(...parts: string[]): string {
    return URLExt.join(this.settings.baseUrl, API_PREFIX, ...parts.map(encodePath));
  }

  /** A WebSocket URL under /train/api, with the token when the server uses one. */
  wsUrl(path: string, query: Record<string, string | number> = {}): string {
    const q: Record<string, string | number> = { ...query };
    if (this.settings.token) {
      q.token = this.settings.token;
    }
    return URLExt.join(this.settings.wsUrl, API_PREFIX, path) + URLExt.objectToQueryString(q);
  }

  async request<T>(method: string, parts: string[], options: IRequestOptions = {}): Promise<T> {
    const response = await this.fetch(method, parts, options);
    const text = await response.text();
    if (response.status === 204 || !text) {
      return undefined as T;
    }
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new TrainApiError(
        `Unexpected response from ${parts.join('/') || 'the server'} (not JSON).`,
        'bad-response',
        response.status
      );
    }
  }

  /** The raw response (for file downloads); errors are thrown as TrainApiError. */
  async fetch(method: string, parts: string[], options: IRequestOptions = {}): Promise<Response> {
    const response = await this.send(method, parts, options);
    if (!response.ok) {
      throw await errorFromResponse(response, parts);
    }
    return response;
  }

  /**
   * The response whatever its status; only a server that cannot be reached throws. The body is
   * ``text`` as it is, else ``body`` as JSON.
   */
  async send(method: string, parts: string[], options: IRequestOptions = {}): Promise<Response> {
    let url = this.url(...parts);
    if (options.query) {
      const q: Record<string, string> = {};
      for (const [k, v] of Object.entries(options.query)) {
        if (v !== undefined && v !== null && v !== '') {
          q[k] = String(v);
        }
      }
      url += URLExt.objectToQueryString(q);
    }
    const init: RequestInit = { method, signal: options.signal };
    if (options.text !== undefined) {
      init.body = options.text;
    } else if (options.body !== undefined) {
      init.body = JSON.stringify(options.body);
    } else if (method === 'POST' || method === 'PATCH') {
      init.body = '{}';
    }
    try {
      return await ServerConnection.makeRequest(url, init, this.settings);
    } catch (err) {
      if ((err as Error)?.name === 'AbortError') {
        throw err;
      }
      throw new TrainApiError(
        `Cannot reach the Jupyter server: ${(err as Error)?.message ?? err}`,
        'unreachable'
      );
    }
  }

  info(): Promise<IInfo> {
    return this.request('GET', []);
  }

  async runs(limit = 200, signal?: AbortSignal): Promise<IRun[]> {
    const body = await this.request<{ runs: IRun[] }>('GET', ['runs'], {
      query: { limit },
      signal
    });
    if (!body || !Array.isArray(body.runs)) {
      throw new TrainApiError('Unexpected response from /train/api/runs (no "runs" list).', 'bad-response');
    }
    return body.runs;
  }

  /** One sweep's children (GET /runs?parent=ID), each with its ``best_primary_metric``. */
  async children(parentId: string, limit = 1000, signal?: AbortSignal): Promise<IRun[]> {
    const body = await this.request<{ runs: IRun[] }>('GET', ['runs'], {
      query: { parent: parentId, limit },
      signal
    });
    if (!body || !Array.isArray(body.runs)) {
      throw new TrainApiError('Unexpected response from /train/api/runs (no "runs" list).', 'bad-response');
    }
    return body.runs;
  }

  /** A run; a sweep's also has ``sweep`` (its children by status and the best one). */
  run(id: string): Promise<IRun & { sweep?: ISweepSummary }> {
    return this.request('GET', ['runs', id]);
  }

  cancel(id: string): Promise<IRun> {
    return this.request('POST', ['runs', id, 'cancel']);
  }

  resubmit(id: string): Promise<IRun> {
    return this.request('POST', ['runs', id, 'resubmit']);
  }

  async logs(id: string): Promise<Array<{ name: string; size: number }>> {
    return (await this.request<{ logs: Array<{ name: string; size: number }> }>('GET', ['runs', id, 'logs'])).logs;
  }

  log(id: string, name: string, offset = 0, limit = 262144): Promise<ILogChunk> {
    return this.request('GET', ['runs', id, 'logs', name], { query: { offset, limit } });
  }

  /** Every point after a cursor (a page of at most ``limit``). Charts use metricSeries. */
  metrics(id: string, cursor = 0, limit = 10000): Promise<{ items: IMetricPoint[]; cursor: number }> {
    return this.request('GET', ['runs', id, 'metrics'], { query: { cursor, limit } });
  }

  /**
   * The run's series downsampled on the server (about ``points`` each), and its cursor; each
   * point [step, value, time] (time null where none), so charts can be drawn over wall time.
   */
  metricSeries(id: string, points = 1000): Promise<IMetricSeriesView> {
    return this.request('GET', ['runs', id, 'metrics', 'series'], { query: { points, times: 1 } });
  }

  /** The files in run history with their sizes in bytes. */
  fileListing(id: string): Promise<{ files: string[]; sizes: Record<string, number> }> {
    return this.request('GET', ['runs', id, 'files']);
  }

  async files(id: string): Promise<string[]> {
    return (await this.request<{ files: string[] }>('GET', ['runs', id, 'files'])).files;
  }

  /** The text of one file of the run's source snapshot (a %%train cell, the script). */
  async snapshotText(id: string, path: string): Promise<string> {
    return (await this.fetch('GET', ['runs', id, 'snapshot', ...path.split('/')])).text();
  }

  fileUrl(id: string, name: string): string {
    return this.url('runs', id, 'files', name);
  }

  async computes(): Promise<ICompute[]> {
    return (await this.request<{ computes: ICompute[] }>('GET', ['computes'])).computes;
  }

  async models(): Promise<IModel[]> {
    return (await this.request<{ models: IModel[] }>('GET', ['models'])).models;
  }

  registerModel(body: { name: string; run_id: string; path: string; description?: string }): Promise<IModel> {
    return this.request('POST', ['models'], { body });
  }

  /** Registered datasets: every version, by name then version, with the runs that used it. */
  async datasets(): Promise<IDataset[]> {
    return (await this.request<{ datasets: IDataset[] }>('GET', ['datasets'])).datasets;
  }

  async environments(): Promise<IEnvironment[]> {
    return (await this.request<{ environments: IEnvironment[] }>('GET', ['environments'])).environments;
  }

  /** Deployed web services (Model.deploy), by name. */
  async services(): Promise<IService[]> {
    return (await this.request<{ services: IService[] }>('GET', ['services'])).services;
  }

  /** Stop a service (its run is canceled) and forget it. */
  deleteService(name: string): Promise<IServiceDeleted> {
    return this.request('DELETE', ['services', name]);
  }

  /** The scoring process's log, after its environment build's. */
  async serviceLogs(name: string): Promise<string> {
    return (await this.request<{ name: string; logs: string }>('GET', ['services', name, 'logs'])).logs;
  }

  /**
   * Score ``input`` (what the entry script's run() receives, usually JSON) through the server.
   * Any status comes back as it is: the service's answer or its error, or jupyter-train's
   * (the service is not Healthy, or unknown).
   */
  async score(name: string, input: string): Promise<IScoreResponse> {
    const response = await this.send('POST', ['services', name, 'score'], { text: input });
    return { status: response.status, text: await response.text() };
  }
}

/** Path segments are encoded, but a segment may itself hold '/' (a file inside a run). */
function encodePath(part: string): string {
  return part
    .split('/')
    .map(p => encodeURIComponent(p))
    .join('/');
}

async function errorFromResponse(response: Response, parts: string[]): Promise<TrainApiError> {
  let body: any = undefined;
  try {
    const text = await response.text();
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  if (body && typeof body === 'object' && typeof body.message === 'string') {
    return new TrainApiError(
      body.message,
      'server',
      response.status,
      body.error_code ? String(body.error_code) : undefined
    );
  }
  if (response.status === 404 && parts.length <= 1) {
    return new TrainApiError(
      'The jupyter-train server extension is not enabled on this Jupyter server ' +
        '(/train/api answered 404). Check `jupyter server extension list`.',
      'not-installed',
      404
    );
  }
  return new TrainApiError(
    `Server answered HTTP ${response.status} ${response.statusText}`.trim(),
    'server',
    response.status
  );
}
