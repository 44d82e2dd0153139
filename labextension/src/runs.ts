/**
 * Runs as the panel holds them: the run record of the REST contract, its status groups and
 * time per phase, the sidebar's filter and grouping, and the store the events feed keeps
 * current. Pure: no JupyterLab or DOM dependency, so jest tests it directly.
 */

import { isTerminal } from './contract';

export interface IPhase {
  state: string;
  ts: number;
  message?: string;
}

export interface IPrimaryMetric {
  name: string;
  value: number;
  step?: number | null;
}

/** One run as the server describes it (GET /train/api/runs, the events feed). */
export interface IRun {
  id: string;
  experiment: string;
  status: string;
  created_at: number;
  started_at?: number | null;
  ended_at?: number | null;
  compute_target?: string;
  script?: string;
  arguments?: string[];
  tags?: Record<string, string>;
  properties?: Record<string, any>;
  error?: string | null;
  snapshot_id?: string;
  run_dir?: string;
  phases?: IPhase[];
  queue_position?: number;
  primary_metric?: IPrimaryMetric | null;
  /** The sweep this run is a child of (a sweep's children are ordinary runs). */
  parent_id?: string | null;
  /** GET /runs?parent=ID and the feed: the best value of the sweep's primary metric it logged. */
  best_primary_metric?: number | null;
}

/** Status filter groups offered by the panel. */
export type StatusGroup = 'active' | 'completed' | 'failed' | 'canceled';

export const STATUS_GROUPS: ReadonlyArray<StatusGroup> = [
  'active',
  'completed',
  'failed',
  'canceled'
];

export function statusGroup(status: string): StatusGroup {
  switch (status) {
    case 'Completed':
      return 'completed';
    case 'Failed':
      return 'failed';
    case 'Canceled':
      return 'canceled';
    default:
      return 'active';
  }
}

/** Seconds the run has run (start to end, or to ``now`` while it runs); null before it starts. */
export function runDuration(run: IRun, nowSeconds: number): number | null {
  const start = run.started_at ?? firstPhase(run, 'Running')?.ts ?? null;
  if (start === null || start === undefined) {
    return null;
  }
  const end = run.ended_at ?? (isTerminal(run.status) ? lastPhaseTs(run) : nowSeconds);
  return Math.max(0, (end ?? nowSeconds) - start);
}

function firstPhase(run: IRun, state: string): IPhase | undefined {
  return (run.phases ?? []).find(p => p.state === state);
}

function lastPhaseTs(run: IRun): number | null {
  const phases = run.phases ?? [];
  return phases.length ? phases[phases.length - 1].ts : null;
}

export interface IPhaseSpan {
  state: string;
  start: number;
  seconds: number;
  message?: string;
}

/**
 * Time spent in each phase: from a phase's timestamp to the next one's (the last, while the
 * run is not finished, to ``now``). A terminal phase has no duration and ends the list.
 */
export function phaseSpans(run: IRun, nowSeconds: number): IPhaseSpan[] {
  const phases = run.phases ?? [];
  const spans: IPhaseSpan[] = [];
  phases.forEach((p, i) => {
    if (isTerminal(p.state)) {
      return;
    }
    const next = phases[i + 1];
    const end = next ? next.ts : isTerminal(run.status) ? p.ts : nowSeconds;
    spans.push({
      state: p.state,
      start: p.ts,
      seconds: Math.max(0, end - p.ts),
      ...(p.message ? { message: p.message } : {})
    });
  });
  return spans;
}

/** The panel's filter: statuses to show (empty = all), one experiment ('' = all), a search. */
export interface IRunFilter {
  statuses: ReadonlyArray<StatusGroup>;
  experiment: string;
  search: string;
}

export const EMPTY_FILTER: IRunFilter = { statuses: [], experiment: '', search: '' };

/**
 * Whether a run passes the filter. The search matches, case-insensitively, every word against
 * the run's id, experiment, script, status, tag keys and values ("key:value" also matches).
 */
export function matchesFilter(run: IRun, filter: IRunFilter): boolean {
  if (filter.statuses.length && !filter.statuses.includes(statusGroup(run.status))) {
    return false;
  }
  if (filter.experiment && run.experiment !== filter.experiment) {
    return false;
  }
  const words = filter.search.toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) {
    return true;
  }
  const tags = Object.entries(run.tags ?? {});
  const haystack = [
    run.id,
    run.experiment,
    run.script ?? '',
    run.status,
    run.tags?.['display_name'] ?? '',
    ...tags.map(([k, v]) => `${k}:${v}`),
    ...tags.map(([k, v]) => `${k}=${v}`)
  ]
    .join('\n')
    .toLowerCase();
  return words.every(w => haystack.includes(w));
}

export interface IExperimentGroup {
  experiment: string;
  runs: IRun[];
  /** Runs in the group still going (not in a final state). */
  active: number;
}

/**
 * Filtered top-level runs grouped by experiment; groups ordered by their newest run, runs newest
 * first. A sweep's children are not rows of their own (they open under their sweep's row); a
 * search that matches one of them shows its sweep.
 */
export function groupByExperiment(
  runs: ReadonlyArray<IRun>,
  filter: IRunFilter = EMPTY_FILTER
): IExperimentGroup[] {
  const children = new Map<string, IRun[]>();
  for (const run of runs) {
    if (run.parent_id) {
      children.set(run.parent_id, [...(children.get(run.parent_id) ?? []), run]);
    }
  }
  const searchOnly: IRunFilter = { ...EMPTY_FILTER, search: filter.search };
  const groups = new Map<string, IRun[]>();
  for (const run of runs) {
    if (run.parent_id) {
      continue;
    }
    const hit =
      matchesFilter(run, filter) ||
      (filter.search.trim() !== '' &&
        matchesFilter(run, { ...filter, search: '' }) &&
        (children.get(run.id) ?? []).some(c => matchesFilter(c, searchOnly)));
    if (!hit) {
      continue;
    }
    const list = groups.get(run.experiment) ?? [];
    list.push(run);
    groups.set(run.experiment, list);
  }
  const out: IExperimentGroup[] = [];
  for (const [experiment, list] of groups) {
    list.sort((a, b) => b.created_at - a.created_at);
    out.push({
      experiment,
      runs: list,
      active: list.filter(r => !isTerminal(r.status)).length
    });
  }
  out.sort((a, b) => b.runs[0].created_at - a.runs[0].created_at);
  return out;
}

/** Experiments present in ``runs``, sorted by name. */
export function experimentNames(runs: ReadonlyArray<IRun>): string[] {
  return Array.from(new Set(runs.map(r => r.experiment))).sort();
}

type Listener = () => void;

/**
 * The runs the panel knows about, kept current from the server's events feed: a full list
 * (``{"type": "runs"}``) replaces it; one run (``{"type": "run"}``) is inserted or updated in
 * place. Listeners hear about every change. ``limit`` counts top-level runs: a sweep's children
 * stay as long as their sweep does (and those whose sweep is not known yet, which the feed may
 * send before it).
 */
export class RunsStore {
  constructor(readonly limit = 200) {}

  get runs(): ReadonlyArray<IRun> {
    return this._runs;
  }

  get(id: string): IRun | undefined {
    return this._byId.get(id);
  }

  /** The children of a sweep held (newest first); empty for any other run. */
  children(parentId: string): ReadonlyArray<IRun> {
    return this._byParent.get(parentId) ?? [];
  }

  /** Replace everything (a fresh list from the server). */
  reset(runs: ReadonlyArray<IRun>): void {
    this._runs = this._trim(runs);
    this._reindex();
    this._emit();
  }

  /**
   * Insert or update one run; returns whether anything changed. A record without
   * ``best_primary_metric`` (a run's own stream, a cancel's answer) keeps the one held.
   */
  upsert(run: IRun): boolean {
    const old = this._byId.get(run.id);
    if (old && old.best_primary_metric !== undefined && !('best_primary_metric' in run)) {
      run = { ...run, best_primary_metric: old.best_primary_metric };
    }
    if (old && JSON.stringify(old) === JSON.stringify(run)) {
      return false;
    }
    const others = this._runs.filter(r => r.id !== run.id);
    others.push(run);
    this._runs = this._trim(others);
    this._reindex();
    this._emit();
    return true;
  }

  /** Apply one message of the events feed; returns whether it was understood. */
  applyMessage(msg: any): boolean {
    if (msg && msg.type === 'runs' && Array.isArray(msg.runs)) {
      this.reset(msg.runs);
      return true;
    }
    if (msg && msg.type === 'run' && msg.run && typeof msg.run.id === 'string') {
      this.upsert(msg.run);
      return true;
    }
    return false;
  }

  subscribe(listener: Listener): () => void {
    this._listeners.add(listener);
    return () => this._listeners.delete(listener);
  }

  /** Newest first: at most ``limit`` top-level runs, and the children of those kept. */
  private _trim(runs: ReadonlyArray<IRun>): IRun[] {
    const sorted = [...runs].sort((a, b) => b.created_at - a.created_at);
    const top = sorted.filter(r => !r.parent_id);
    const kept = new Set(top.slice(0, this.limit).map(r => r.id));
    const dropped = new Set(top.slice(this.limit).map(r => r.id));
    return sorted.filter(r => (r.parent_id ? !dropped.has(r.parent_id) : kept.has(r.id)));
  }

  private _reindex(): void {
    this._byId = new Map(this._runs.map(r => [r.id, r]));
    this._byParent = new Map();
    for (const r of this._runs) {
      if (r.parent_id) {
        const list = this._byParent.get(r.parent_id) ?? [];
        list.push(r);
        this._byParent.set(r.parent_id, list);
      }
    }
  }

  private _emit(): void {
    for (const l of Array.from(this._listeners)) {
      l();
    }
  }

  private _runs: IRun[] = [];
  private _byId = new Map<string, IRun>();
  private _byParent = new Map<string, IRun[]>();
  private _listeners = new Set<Listener>();
}

/**
 * What a run's plain row in the panel shows, as one string: equal strings, the same row (its
 * duration aside, which the panel updates in place every second).
 */
export function rowSignature(run: IRun, selected: boolean): string {
  const p = run.primary_metric;
  return JSON.stringify([run.status, run.tags, run.arguments, run.properties?.params, run.created_at, run.started_at, run.ended_at,
    run.error, run.parent_id, p?.name, p?.value, p?.step, selected, new Date().toDateString()]);
}
