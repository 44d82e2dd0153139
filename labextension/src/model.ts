/**
 * Front-end models of the jupyter-train panel: pure functions and small classes with no
 * JupyterLab or DOM dependency, so jest tests them directly (see labextension/test/).
 */

export type RunState =
  | 'NotStarted'
  | 'Preparing'
  | 'Queued'
  | 'Starting'
  | 'Running'
  | 'Finalizing'
  | 'CancelRequested'
  | 'Completed'
  | 'Failed'
  | 'Canceled';

export const TERMINAL_STATES: ReadonlyArray<string> = [
  'Completed',
  'Failed',
  'Canceled'
];

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
}

export interface IMetricPoint {
  id: number;
  rank: number;
  name: string;
  step: number | null;
  value: number | string;
  ts?: number | null;
}

/** Points per series of the downsampled views charts are drawn from. */
export const CHART_POINTS = 1000;

/** One series of GET /runs/{id}/metrics/series: downsampled on the server for a chart. */
export interface IMetricSeries {
  name: string;
  rank: number;
  count: number;
  numeric: number;
  downsampled: boolean;
  points: Array<[number, number]>;
  last: { value: number | string; step: number | null } | null;
}

/** A run's series as of ``cursor``: stream from the cursor for the points after it. */
export interface IMetricSeriesView {
  series: IMetricSeries[];
  cursor: number;
}

/** Status filter groups offered by the panel. */
export type StatusGroup = 'active' | 'completed' | 'failed' | 'canceled';

export const STATUS_GROUPS: ReadonlyArray<StatusGroup> = [
  'active',
  'completed',
  'failed',
  'canceled'
];

export function isTerminal(status: string): boolean {
  return TERMINAL_STATES.includes(status);
}

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

/** "850 ms", "12 s", "3 min 05 s", "2 h 04 min"; "—" for null. */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) {
    return '—';
  }
  if (seconds < 1) {
    return `${Math.round(seconds * 1000)} ms`;
  }
  if (seconds < 60) {
    return `${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)} s`;
  }
  const s = Math.round(seconds);
  if (s < 3600) {
    return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  }
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

/** A metric value for a table cell: 4 significant digits, integers as they are. */
export function formatValue(value: number | string | null | undefined): string {
  if (value === null || value === undefined) {
    return '';
  }
  if (typeof value === 'string') {
    return value;
  }
  if (Number.isInteger(value)) {
    return String(value);
  }
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) {
    return value.toExponential(3);
  }
  return String(Number(value.toPrecision(4)));
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
 * Filtered runs grouped by experiment; groups ordered by their newest run, runs newest first.
 */
export function groupByExperiment(
  runs: ReadonlyArray<IRun>,
  filter: IRunFilter = EMPTY_FILTER
): IExperimentGroup[] {
  const groups = new Map<string, IRun[]>();
  for (const run of runs) {
    if (!matchesFilter(run, filter)) {
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
 * place. Listeners hear about every change.
 */
export class RunsStore {
  constructor(readonly limit = 200) {}

  get runs(): ReadonlyArray<IRun> {
    return this._runs;
  }

  get(id: string): IRun | undefined {
    return this._byId.get(id);
  }

  /** Replace everything (a fresh list from the server). */
  reset(runs: ReadonlyArray<IRun>): void {
    this._runs = [...runs].sort((a, b) => b.created_at - a.created_at).slice(0, this.limit);
    this._reindex();
    this._emit();
  }

  /** Insert or update one run; returns whether anything changed. */
  upsert(run: IRun): boolean {
    const old = this._byId.get(run.id);
    if (old && JSON.stringify(old) === JSON.stringify(run)) {
      return false;
    }
    const others = this._runs.filter(r => r.id !== run.id);
    others.push(run);
    this._runs = others.sort((a, b) => b.created_at - a.created_at).slice(0, this.limit);
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

  private _reindex(): void {
    this._byId = new Map(this._runs.map(r => [r.id, r]));
  }

  private _emit(): void {
    for (const l of Array.from(this._listeners)) {
      l();
    }
  }

  private _runs: IRun[] = [];
  private _byId = new Map<string, IRun>();
  private _listeners = new Set<Listener>();
}

/** One line of a chart: (x, y) points in x order. */
export interface ISeries {
  label: string;
  points: Array<[number, number]>;
}

/**
 * Metric points of one run by metric name and rank: a downsampled view loaded from the server
 * (``load``, the base of each series) and the points that stream in after it (``add``, by
 * cursor). Text values (and nan/inf, which the server sends as text) are kept for the table but
 * left out of charts.
 */
export class MetricHistory {
  get cursor(): number {
    return this._cursor;
  }

  /** Points streamed in since the last ``load`` (a view reloads when they pile up). */
  get streamed(): number {
    return this._streamed;
  }

  /**
   * Take a downsampled view as the base of every series it has. Streamed points it already
   * covers (at or before its cursor) are dropped; later ones stay on top of it.
   */
  load(view: IMetricSeriesView): void {
    for (const s of view.series) {
      const byRank = this._entry(s.name);
      const e = byRank.get(s.rank) ?? { base: [], baseNumeric: 0, baseCount: 0, last: null, points: [] };
      e.base = s.points;
      e.baseNumeric = s.numeric;
      e.baseCount = s.count;
      e.last = s.last;
      e.points = e.points.filter(p => p.id > view.cursor);
      byRank.set(s.rank, e);
    }
    this._streamed = 0;
    for (const byRank of this._byName.values()) {
      for (const e of byRank.values()) {
        this._streamed += e.points.length;
      }
    }
    if (view.cursor > this._cursor) {
      this._cursor = view.cursor;
    }
  }

  /** Add points; ones at or before the cursor already held are ignored (a resumed stream). */
  add(items: ReadonlyArray<IMetricPoint>, cursor?: number): number {
    let added = 0;
    for (const p of items) {
      if (p.id <= this._cursor) {
        continue;
      }
      this._cursor = p.id;
      const byRank = this._entry(p.name);
      const e = byRank.get(p.rank) ?? { base: [], baseNumeric: 0, baseCount: 0, last: null, points: [] };
      e.points.push(p);
      byRank.set(p.rank, e);
      added++;
    }
    this._streamed += added;
    if (cursor !== undefined && cursor > this._cursor) {
      this._cursor = cursor;
    }
    return added;
  }

  /** Metric names in the order they were first logged. */
  get names(): string[] {
    return Array.from(this._byName.keys());
  }

  ranks(name: string): number[] {
    return Array.from(this._byName.get(name)?.keys() ?? []).sort((a, b) => a - b);
  }

  /** Names with at least two numeric points on some rank: the ones worth a chart. */
  get chartable(): string[] {
    return this.names.filter(n =>
      this.ranks(n).some(r => {
        const e = this._byName.get(n)!.get(r)!;
        return e.baseNumeric + e.points.filter(isNumber).length >= 2;
      })
    );
  }

  /** Latest value of each metric on a rank (default rank 0, else the lowest rank). */
  latest(rank?: number): Array<{ name: string; value: number | string; step: number | null }> {
    const out: Array<{ name: string; value: number | string; step: number | null }> = [];
    for (const [name, byRank] of this._byName) {
      const r = rank ?? (byRank.has(0) ? 0 : Math.min(...byRank.keys()));
      const e = byRank.get(r);
      const last = e?.points.length ? e.points[e.points.length - 1] : e?.last;
      if (last) {
        out.push({ name, value: last.value, step: last.step });
      }
    }
    return out;
  }

  /**
   * Numeric points of one metric on one rank, in x order: the loaded view's, then the streamed
   * ones; x is the step, else the point's position in the series.
   */
  series(name: string, rank = 0, label?: string): ISeries {
    const e = this._byName.get(name)?.get(rank);
    const points: Array<[number, number]> = e ? e.base.slice() : [];
    let sorted = true;
    e?.points.forEach((p, i) => {
      if (isNumber(p)) {
        const x = p.step ?? e.baseCount + i;
        sorted = sorted && (!points.length || points[points.length - 1][0] <= x);
        points.push([x, p.value as number]);
      }
    });
    if (!sorted) {
      points.sort((a, b) => a[0] - b[0]);
    }
    return { label: label ?? (rank === 0 ? name : `${name} [rank ${rank}]`), points };
  }

  private _entry(name: string): Map<number, ISeriesEntry> {
    let byRank = this._byName.get(name);
    if (!byRank) {
      byRank = new Map();
      this._byName.set(name, byRank);
    }
    return byRank;
  }

  private _cursor = 0;
  private _streamed = 0;
  private _byName = new Map<string, Map<number, ISeriesEntry>>();
}

interface ISeriesEntry {
  base: Array<[number, number]>;
  baseNumeric: number;
  baseCount: number;
  last: { value: number | string; step: number | null } | null;
  points: IMetricPoint[];
}

function isNumber(p: IMetricPoint): boolean {
  return typeof p.value === 'number' && isFinite(p.value);
}

/** Names charted in common when comparing runs: those every run logged, else any run logged. */
export function comparableMetrics(histories: ReadonlyArray<MetricHistory>): string[] {
  if (!histories.length) {
    return [];
  }
  const lists = histories.map(h => h.chartable);
  const common = lists[0].filter(n => lists.every(l => l.includes(n)));
  if (common.length) {
    return common;
  }
  return Array.from(new Set(lists.flat()));
}

/** Axis bounds with a little padding; a flat line gets a band around its value. */
export function extent(series: ReadonlyArray<ISeries>): {
  x: [number, number];
  y: [number, number];
} | null {
  let x0 = Infinity;
  let x1 = -Infinity;
  let y0 = Infinity;
  let y1 = -Infinity;
  for (const s of series) {
    for (const [x, y] of s.points) {
      x0 = Math.min(x0, x);
      x1 = Math.max(x1, x);
      y0 = Math.min(y0, y);
      y1 = Math.max(y1, y);
    }
  }
  if (x0 === Infinity) {
    return null;
  }
  if (x0 === x1) {
    x0 -= 1;
    x1 += 1;
  }
  if (y0 === y1) {
    const pad = Math.abs(y0) * 0.1 || 1;
    y0 -= pad;
    y1 += pad;
  } else {
    const pad = (y1 - y0) * 0.05;
    y0 -= pad;
    y1 += pad;
  }
  return { x: [x0, x1], y: [y0, y1] };
}

/** About ``count`` round tick values covering [lo, hi]. */
export function ticks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo) || !isFinite(lo) || !isFinite(hi)) {
    return [lo];
  }
  const raw = (hi - lo) / Math.max(1, count);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map(m => m * mag).find(s => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Number(v.toPrecision(12)));
  }
  return out;
}

/**
 * Log text held for one log file, appended chunk by chunk as it streams, with its lines split
 * once. Long logs keep only the last ``maxLines`` lines in view (the download has them all).
 */
export class LogBuffer {
  constructor(readonly maxLines = 20000) {}

  get lines(): ReadonlyArray<string> {
    return this._lines;
  }

  /** Lines dropped from the front to stay under maxLines. */
  get dropped(): number {
    return this._dropped;
  }

  /** Bytes offset to resume from. */
  offset = 0;

  append(text: string, nextOffset?: number): string[] {
    const parts = (this._partial + text).split('\n');
    this._partial = parts.pop() ?? '';
    this._lines.push(...parts);
    if (this._lines.length > this.maxLines) {
      const drop = this._lines.length - this.maxLines;
      this._lines.splice(0, drop);
      this._dropped += drop;
    }
    if (nextOffset !== undefined) {
      this.offset = nextOffset;
    }
    return parts;
  }

  private _lines: string[] = [];
  private _partial = '';
  private _dropped = 0;
}

/** Indices of the lines containing ``query`` (case-insensitive); all lines for ''. */
export function searchLines(lines: ReadonlyArray<string>, query: string): number[] {
  const q = query.toLowerCase();
  const out: number[] = [];
  lines.forEach((line, i) => {
    if (!q || line.toLowerCase().includes(q)) {
      out.push(i);
    }
  });
  return out;
}

/**
 * Log names ordered for the tabs: rank logs by rank number, then the rest (supervisor,
 * prepare, per-node, user files) by name.
 */
export function sortLogNames(names: ReadonlyArray<string>): string[] {
  const rank = (n: string): number => {
    const m = /^rank_(\d+)\.txt$/.exec(n);
    return m ? Number(m[1]) : Infinity;
  };
  return [...names].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

function pyStr(s: string): string {
  return `'${String(s).replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\n/g, '\\n')}'`;
}

function pyValue(v: unknown): string {
  if (typeof v === 'number') {
    return String(v);
  }
  if (typeof v === 'boolean') {
    return v ? 'True' : 'False';
  }
  if (v === null || v === undefined) {
    return 'None';
  }
  return pyStr(String(v));
}

function pyDict(d: Record<string, unknown>): string {
  return `{${Object.entries(d)
    .map(([k, v]) => `${pyStr(k)}: ${pyValue(v)}`)
    .join(', ')}}`;
}

/**
 * Whether ``a`` written bare is a Python number whose ``str()`` (what the script receives) is
 * ``a`` again: "10", "0.1", "1.0" yes; "007" / "-05" (not valid Python), "1.10" (-> "1.1"),
 * "1e5" (-> "100000.0"), "-0" (-> "0") no.
 */
function isPyNumber(a: string): boolean {
  if (/^-?(0|[1-9]\d*)$/.test(a)) {
    return a !== '-0';
  }
  if (!/^-?(0|[1-9]\d*)\.\d+$/.test(a)) {
    return false;
  }
  // In this range both JS and Python print the shortest round-trip digits, without exponent.
  const n = Number(a);
  if (n !== 0 && (Math.abs(n) < 1e-4 || Math.abs(n) >= 1e16)) {
    return false;
  }
  return (Number.isInteger(n) ? `${n}.0` : String(n)) === a;
}

/** Arguments as Python values: numbers stay numbers ("0.1" -> 0.1), the rest strings. */
function pyArgs(args: ReadonlyArray<string>): string {
  return `[${args.map(a => (isPyNumber(a) ? a : pyStr(a))).join(', ')}]`;
}

/**
 * Python (kernel_lib SDK) that submits the same run again: the workspace, the experiment,
 * a ScriptRunConfig with the script, arguments, compute, environment and distribution, and
 * the run's own tags (the ones the system adds are left out).
 */
export function sdkCode(run: IRun, workspacePath?: string): string {
  const props = run.properties ?? {};
  const dist = props.distributed as
    | { kind: string; nodes: number; procs_per_node: number; backend?: string | null; max_restarts?: number }
    | undefined;
  const env = props.environment as { name: string; version?: number | null } | undefined;
  const imports = ['Workspace', 'Experiment', 'ScriptRunConfig'];
  const lines: string[] = [];
  const cfg: string[] = [];
  // A %%train cell travels as extra_files, with or without a source directory (--source).
  const fromCell =
    Array.isArray(props.extra_files) && props.extra_files.includes(run.script ?? 'cell.py');
  cfg.push(`    source_directory=${props.source_directory ? pyStr(props.source_directory) : 'None'},`);
  cfg.push(`    script=${pyStr(run.script ?? '')},`);
  if (run.arguments && run.arguments.length) {
    cfg.push(`    arguments=${pyArgs(run.arguments)},`);
  }
  if (run.compute_target && run.compute_target !== 'local') {
    cfg.push(`    compute_target=${pyStr(run.compute_target)},`);
  }
  if (env) {
    imports.push('Environment');
    const version = env.version ? `, version=${env.version}` : '';
    cfg.push(`    environment=Environment.get(ws, ${pyStr(env.name)}${version}),`);
  }
  if (dist) {
    if (dist.kind === 'mpi') {
      imports.push('MpiConfiguration');
      cfg.push(
        `    distributed_job_config=MpiConfiguration(process_count_per_node=${dist.procs_per_node}, node_count=${dist.nodes}),`
      );
    } else {
      imports.push('PyTorchConfiguration');
      const backend = (dist.backend ?? 'nccl') === 'gloo' ? 'Gloo' : 'Nccl';
      const restarts = dist.max_restarts ? `, max_restarts=${dist.max_restarts}` : '';
      cfg.push(
        `    distributed_job_config=PyTorchConfiguration(communication_backend=${pyStr(backend)}, ` +
          `process_count=${dist.nodes * dist.procs_per_node}, node_count=${dist.nodes}${restarts}),`
      );
    }
  }
  if (fromCell) {
    cfg.push(
      `    extra_files={${pyStr(run.script ?? 'cell.py')}: open(${pyStr(run.script ?? 'cell.py')}).read()},  # the %%train cell's text`
    );
  }
  const tags: Record<string, string> = {};
  for (const [k, v] of Object.entries(run.tags ?? {})) {
    if (k !== 'resubmit_of' && !k.startsWith('_')) {
      tags[k] = v;
    }
  }
  lines.push(`from kernel_lib import ${imports.join(', ')}`);
  lines.push('');
  lines.push(workspacePath ? `ws = Workspace(${pyStr(workspacePath)})` : 'ws = Workspace.default()');
  lines.push('config = ScriptRunConfig(');
  lines.push(...cfg);
  lines.push(')');
  const tagArg = Object.keys(tags).length ? `, tags=${pyDict(tags)}` : '';
  lines.push(`run = Experiment(ws, ${pyStr(run.experiment)}).submit(config${tagArg})`);
  lines.push('run.wait_for_completion(show_output=True)');
  return lines.join('\n') + '\n';
}

/* ---- Ray clusters (the Compute section) ---------------------------------------------- */

export interface IRayNodeView {
  node_id: string;
  address: string;
  state: string;
  resources: Record<string, number>;
  used?: Record<string, number>;
}

export interface IRayStatusView {
  state: string;
  nodes: ReadonlyArray<IRayNodeView>;
  error?: string | null;
  requested?: ReadonlyArray<Record<string, number>>;
  pending_nodes?: number;
  waiting_placement_groups?: number;
}

const GIB = 1024 ** 3;

function amount(name: string, value: number): string {
  if (name === 'memory') {
    return (value / GIB).toFixed(1);
  }
  return Number.isInteger(value) ? String(value) : value.toFixed(2).replace(/0+$/, '');
}

/**
 * A node's resources as "CPU 2/2 · GPU 0/1 · memory 1.0/22.9 GiB": CPU and GPU first, custom
 * resources by name, memory last; used/total where the usage is known, else the total.
 */
export function formatResources(total: Record<string, number>, used?: Record<string, number>): string {
  const rank = (k: string) => (k === 'CPU' ? 0 : k === 'GPU' ? 1 : k === 'memory' ? 3 : 2);
  const names = Object.keys(total).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  return names
    .map(k => {
      const tot = amount(k, total[k]);
      const text = used && k in used ? `${amount(k, used[k])}/${tot}` : tot;
      return `${k} ${text}${k === 'memory' ? ' GiB' : ''}`;
    })
    .join(' · ');
}

/** One line about a Ray cluster: its nodes, busy and idle, and what the autoscaler is doing. */
export function raySummary(ray: IRayStatusView): string {
  if (ray.state === 'unreachable') {
    return `unreachable: ${ray.error ?? 'no answer'}`;
  }
  if (ray.state === 'connecting') {
    return 'connecting…';
  }
  if (ray.state === 'not started') {
    return ray.error ?? 'not started';
  }
  const busy = ray.nodes.filter(n => n.state === 'busy').length;
  const idle = ray.nodes.filter(n => n.state === 'idle').length;
  const parts = [`${ray.nodes.length} Ray node${ray.nodes.length === 1 ? '' : 's'}`];
  if (busy || idle) {
    parts.push(`${busy} busy`, `${idle} idle`);
  }
  if (ray.pending_nodes) {
    parts.push(`${ray.pending_nodes} starting`);
  }
  if (ray.waiting_placement_groups) {
    parts.push(`${ray.waiting_placement_groups} waiting for resources`);
  }
  const asked = ray.requested?.length ?? 0;
  if (asked) {
    parts.push(`${asked} bundle${asked === 1 ? '' : 's'} requested`);
  }
  return parts.join(' · ');
}
