/**
 * Deployed model web services (Azure ML ``Model.deploy``) as the sidebar's Endpoints section
 * shows them: a service's summary and traffic lines, when the list needs a quick refresh, and
 * a scoring answer (or error) made readable. Pure: no JupyterLab or DOM dependency, so jest
 * tests it directly.
 */

import { formatDuration, formatValue } from './format';

export type ServiceState = 'Transitioning' | 'Healthy' | 'Unhealthy' | 'Failed';

/** GET /services/{name} (schema Service in jupyter_ext/openapi.yaml). */
export interface IService {
  name: string;
  state: ServiceState;
  run_id: string;
  run_status?: string;
  scoring_uri: string;
  port?: number;
  auth_enabled: boolean;
  compute_target?: string | null;
  entry_script?: string | null;
  builtin?: string | null;
  models: Array<{ name: string; version: number }>;
  created_at: number;
  description?: string | null;
  tags?: Record<string, string>;
  restarts: number;
  error?: string | null;
  max_request_bytes?: number;
  requests: number;
  errors?: number;
  p50_ms?: number | null;
  p99_ms?: number | null;
  last_request_at?: number | null;
}

/** DELETE /services/{name}. */
export interface IServiceDeleted {
  name: string;
  deleted: boolean;
  run_id: string;
  run_status?: string | null;
}

/** What POST /services/{name}/score answered: its status and its body as it came. */
export interface IScoreResponse {
  status: number;
  text: string;
}

/** A scoring answer as the try-it box shows it. */
export interface IAnswerView {
  ok: boolean;
  /** The HTTP status; none when the server could not be reached. */
  status?: number;
  /** The status and the time the answer took: "HTTP 200 · 12 ms". */
  head: string;
  /** An error's message; '' for an answer. */
  message: string;
  /** The answer as JSON, or an error's traceback (or its body, when it has no message). */
  detail: string;
}

/** The input a new try-it box starts with: the shape Azure ML's entry scripts read. */
export const DEFAULT_INPUT = '{"data": []}';

/** States that change by themselves soon: the list is refreshed every couple of seconds. */
const BUSY_STATES: ReadonlyArray<string> = ['Transitioning', 'Unhealthy'];

/** True while a service is starting or being restarted after a crash. */
export function needsQuickRefresh(services: ReadonlyArray<IService>): boolean {
  return services.some(s => BUSY_STATES.includes(s.state));
}

/** "scaler:1, other:2 · auth on · 2 restarts" (the restarts only when there were some). */
export function serviceSummary(svc: IService): string {
  const parts = [
    svc.models.length ? svc.models.map(m => `${m.name}:${m.version}`).join(', ') : 'no models',
    `auth ${svc.auth_enabled ? 'on' : 'off'}`
  ];
  if (svc.restarts > 0) {
    parts.push(plural(svc.restarts, 'restart'));
  }
  return parts.join(' · ');
}

/** "12 requests · 1 error · p50 0.42 ms · p99 3.1 ms"; "No requests yet" before the first. */
export function serviceTraffic(svc: IService): string {
  if (!svc.requests) {
    return 'No requests yet';
  }
  const parts = [plural(svc.requests, 'request'), plural(svc.errors ?? 0, 'error')];
  if (svc.p50_ms !== null && svc.p50_ms !== undefined) {
    parts.push(`p50 ${formatLatency(svc.p50_ms)}`);
  }
  if (svc.p99_ms !== null && svc.p99_ms !== undefined) {
    parts.push(`p99 ${formatLatency(svc.p99_ms)}`);
  }
  return parts.join(' · ');
}

/** A latency in milliseconds: "0.42 ms", "12 ms", "340 ms", then formatDuration from 1 s. */
export function formatLatency(ms: number): string {
  if (!isFinite(ms)) {
    return '—';
  }
  if (ms >= 1000) {
    return formatDuration(ms / 1000);
  }
  if (ms < 0.01) {
    return '< 0.01 ms';
  }
  return `${formatValue(ms < 100 ? Number(ms.toPrecision(2)) : Math.round(ms))} ms`;
}

/**
 * The try-it box's view of an answer: a 2xx body as JSON; an error's message from either
 * shape it comes in, the service's own ({"error", "traceback"}: run() raised, a body over the
 * cap, a refused key) or jupyter-train's ({"error_code", "message"}: the service is not
 * Healthy, or unknown), with the traceback as its detail.
 */
export function answerView(res: IScoreResponse, seconds: number): IAnswerView {
  const ok = res.status >= 200 && res.status < 300;
  const head = `HTTP ${res.status} · ${formatDuration(seconds)}`;
  const parsed = parseJson(res.text);
  if (ok) {
    return { ok, status: res.status, head, message: '', detail: parsed.ok ? prettyJson(parsed.value) : res.text };
  }
  const body: Record<string, unknown> =
    parsed.ok && parsed.value !== null && typeof parsed.value === 'object' && !Array.isArray(parsed.value)
      ? (parsed.value as Record<string, unknown>)
      : {};
  const message = typeof body.message === 'string'
    ? `${typeof body.error_code === 'string' ? `${body.error_code}: ` : ''}${body.message}`
    : typeof body.error === 'string' ? body.error : '';
  if (message) {
    return { ok, status: res.status, head, message, detail: typeof body.traceback === 'string' ? body.traceback : '' };
  }
  return { ok, status: res.status, head, message: 'The service answered with an error.', detail: res.text };
}

/**
 * JSON indented two spaces, but an array or object that fits in ``width`` columns where it
 * starts stays on one line: {"result": [3, 6]} rather than seven lines.
 */
export function prettyJson(value: unknown, width = 72): string {
  return pretty(value, '', 0, width);
}

function pretty(value: unknown, indent: string, column: number, width: number): string {
  const flat = oneLine(value);
  if (column + flat.length <= width || value === null || typeof value !== 'object') {
    return flat;
  }
  const inner = `${indent}  `;
  if (Array.isArray(value)) {
    return value.length
      ? `[\n${value.map(v => inner + pretty(v, inner, inner.length, width)).join(',\n')}\n${indent}]`
      : '[]';
  }
  const entries = Object.entries(value as Record<string, unknown>);
  return entries.length
    ? `{\n${entries
        .map(([k, v]) => {
          const key = `${inner}${JSON.stringify(k)}: `;
          return key + pretty(v, inner, key.length, width);
        })
        .join(',\n')}\n${indent}}`
    : '{}';
}

function oneLine(value: unknown): string {
  if (Array.isArray(value)) {
    return `[${value.map(oneLine).join(', ')}]`;
  }
  if (value !== null && typeof value === 'object') {
    return `{${Object.entries(value as Record<string, unknown>)
      .map(([k, v]) => `${JSON.stringify(k)}: ${oneLine(v)}`)
      .join(', ')}}`;
  }
  return JSON.stringify(value);
}

function parseJson(text: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false };
  }
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
