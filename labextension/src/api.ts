import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/**
 * One run as returned by GET /train/api/runs (extra fields are ignored).
 */
export interface IRunSummary {
  id: string;
  experiment: string;
  status: string;
  /** Epoch seconds. */
  created_at: number;
  [key: string]: unknown;
}

export interface IRunsResponse {
  runs: IRunSummary[];
}

/**
 * Error raised for any failure talking to the jupyter-train server extension.
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

/** REST prefix of the server extension, relative to the server base URL. */
export const API_PREFIX = 'train/api';

/**
 * Fetch the most recent runs from the server extension.
 */
export async function fetchRuns(
  settings: ServerConnection.ISettings,
  limit = 50,
  signal?: AbortSignal
): Promise<IRunSummary[]> {
  const url =
    URLExt.join(settings.baseUrl, API_PREFIX, 'runs') +
    URLExt.objectToQueryString({ limit });

  let response: Response;
  try {
    response = await ServerConnection.makeRequest(
      url,
      { method: 'GET', signal },
      settings
    );
  } catch (err) {
    throw new TrainApiError(
      `Cannot reach the Jupyter server: ${(err as Error)?.message ?? err}`,
      'unreachable'
    );
  }

  const text = await response.text();
  let body: any = undefined;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }

  if (!response.ok) {
    if (body && typeof body === 'object' && 'error_code' in body) {
      throw new TrainApiError(
        `${body.message ?? 'Request failed'} (${body.error_code}, HTTP ${response.status})`,
        'server',
        response.status,
        String(body.error_code)
      );
    }
    if (response.status === 404) {
      throw new TrainApiError(
        'The jupyter-train server extension is not enabled on this Jupyter server ' +
          '(GET /train/api/runs returned 404). Check `jupyter server extension list`.',
        'not-installed',
        404
      );
    }
    throw new TrainApiError(
      `Server answered HTTP ${response.status} ${response.statusText}`.trim(),
      'server',
      response.status
    );
  }

  if (!body || !Array.isArray(body.runs)) {
    throw new TrainApiError(
      'Unexpected response from /train/api/runs (no "runs" list).',
      'bad-response',
      response.status
    );
  }
  return body.runs as IRunSummary[];
}
