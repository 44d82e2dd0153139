/**
 * Sweeps (HyperDrive) as the panel shows them: a sweep is a parent run whose
 * ``properties.sweep`` holds its config; its children are ordinary runs with ``parent_id``,
 * ``properties.hyperparameters`` and, when a policy stopped them, ``properties.cancel_reason``.
 * Counts, the best child, the order by the primary metric and compact labels. Pure: no
 * JupyterLab or DOM dependency, so jest tests it directly.
 */

import { isTerminal } from './contract';
import { formatValue } from './format';
import { IRun } from './runs';

export type Goal = 'maximize' | 'minimize';

/** A parameter expression as it travels: Azure ML's [name, [arguments]]. */
export type ParamExpression = [string, unknown[]];

/** ``properties.sweep`` of a sweep's parent run (the SweepRequest, checked). */
export interface ISweepConfig {
  experiment?: string;
  parameter_space: Record<string, ParamExpression>;
  sampling: string;
  seed?: number | null;
  policy?: ({ name: string } & Record<string, unknown>) | null;
  primary_metric_name: string;
  primary_metric_goal: Goal;
  max_total_runs: number;
  max_concurrent_runs?: number | null;
  max_duration_minutes?: number | null;
  tags?: Record<string, string>;
}

/** GET /runs/{id} of a sweep: its children by status and the best one. */
export interface ISweepSummary {
  counts: Record<string, number>;
  children: number;
  best: { run_id: string; value: number; hyperparameters: Record<string, unknown> } | null;
}

export function sweepConfig(run: IRun | undefined | null): ISweepConfig | null {
  const cfg = run?.properties?.sweep;
  return cfg && typeof cfg === 'object' && typeof cfg.primary_metric_name === 'string' ? (cfg as ISweepConfig) : null;
}

export function isSweep(run: IRun | undefined | null): boolean {
  return sweepConfig(run) !== null;
}

/** A child's sampled values, {"--x": 0.3, "--y": 1}. */
export function hyperparameters(run: IRun): Record<string, unknown> {
  const hp = run.properties?.hyperparameters;
  return hp && typeof hp === 'object' ? (hp as Record<string, unknown>) : {};
}

export function trialNumber(run: IRun): number | null {
  const t = run.properties?.sweep_trial;
  return typeof t === 'number' ? t : null;
}

/** Why the run was asked to stop (a policy's words, e.g. "BanditPolicy: ..."), '' if nobody said. */
export function cancelReason(run: IRun): string {
  const r = run.properties?.cancel_reason;
  return typeof r === 'string' ? r : '';
}

/** Stopped early with a reason (an early-termination policy, the sweep ending), not by a user. */
export function isStopped(run: IRun): boolean {
  return (run.status === 'Canceled' || run.status === 'CancelRequested') && cancelReason(run) !== '';
}

function finite(v: unknown): v is number {
  return typeof v === 'number' && isFinite(v);
}

/**
 * The child's value of the sweep's primary metric: the best it logged (``best_primary_metric``),
 * else, where the record does not say, its latest value of that metric; null without one.
 */
export function childMetric(run: IRun, metric: string): number | null {
  if (run.best_primary_metric !== undefined) {
    return finite(run.best_primary_metric) ? run.best_primary_metric : null;
  }
  const p = run.primary_metric;
  return p && p.name === metric && finite(p.value) ? p.value : null;
}

/** Whether ``a`` is a better value than ``b`` for ``goal``. */
export function better(a: number, b: number, goal: Goal): boolean {
  return goal === 'minimize' ? a < b : a > b;
}

/**
 * Children best first by the primary metric (per the goal), those without a value last; ties
 * (and the ones without) in trial order, then oldest first.
 */
export function sortChildren(children: ReadonlyArray<IRun>, cfg: Pick<ISweepConfig, 'primary_metric_name' | 'primary_metric_goal'>): IRun[] {
  const sign = cfg.primary_metric_goal === 'minimize' ? 1 : -1;
  const metric = new Map(children.map(c => [c.id, childMetric(c, cfg.primary_metric_name)]));
  const order = (r: IRun) => trialNumber(r) ?? Number.MAX_SAFE_INTEGER;
  return [...children].sort((a, b) => {
    const va = metric.get(a.id) ?? null;
    const vb = metric.get(b.id) ?? null;
    if (va !== null && vb !== null && va !== vb) {
      return sign * (va - vb);
    }
    if ((va === null) !== (vb === null)) {
      return va === null ? 1 : -1;
    }
    return order(a) - order(b) || a.created_at - b.created_at;
  });
}

/** The child with the best primary metric, and that value; null while none has one. */
export function bestChild(children: ReadonlyArray<IRun>, cfg: ISweepConfig): { run: IRun; value: number } | null {
  let best: { run: IRun; value: number } | null = null;
  for (const c of children) {
    const v = childMetric(c, cfg.primary_metric_name);
    if (v !== null && (best === null || better(v, best.value, cfg.primary_metric_goal))) {
      best = { run: c, value: v };
    }
  }
  return best;
}

export interface ISweepCounts {
  /** Children started so far. */
  total: number;
  /** What the sweep plans: max_total_runs (or more, if more children exist). */
  planned: number;
  /** Children in a final state (completed, failed, canceled or stopped). */
  done: number;
  completed: number;
  /** Stopped with a reason (an early-termination policy). */
  stopped: number;
  failed: number;
  /** Canceled without a reason (by a user). */
  canceled: number;
  /** Not finished yet. */
  active: number;
}

export function sweepCounts(children: ReadonlyArray<IRun>, cfg: ISweepConfig | null): ISweepCounts {
  const c: ISweepCounts = { total: children.length, planned: 0, done: 0, completed: 0, stopped: 0, failed: 0, canceled: 0, active: 0 };
  for (const r of children) {
    if (r.status === 'Canceled' && cancelReason(r)) {
      c.stopped++;
    } else if (r.status === 'Completed') {
      c.completed++;
    } else if (r.status === 'Failed') {
      c.failed++;
    } else if (r.status === 'Canceled') {
      c.canceled++;
    }
    if (isTerminal(r.status)) {
      c.done++;
    } else {
      c.active++;
    }
  }
  c.planned = Math.max(cfg?.max_total_runs ?? 0, c.total);
  return c;
}

/** "5/8 done, 2 stopped, 1 failed, 1 running". */
export function countsText(c: ISweepCounts): string {
  const parts = [`${c.done}/${c.planned} done`];
  if (c.stopped) {
    parts.push(`${c.stopped} stopped`);
  }
  if (c.failed) {
    parts.push(`${c.failed} failed`);
  }
  if (c.canceled) {
    parts.push(`${c.canceled} canceled`);
  }
  if (c.active) {
    parts.push(`${c.active} running`);
  }
  return parts.join(', ');
}

/** A hyperparameter's name without its dashes: "--learning-rate" -> "learning-rate". */
export function paramLabel(name: string): string {
  return name.replace(/^-+/, '') || name;
}

/**
 * The hyperparameter names of a sweep: the parameter space's, in its order, then any other a
 * child has (sorted).
 */
export function hyperparameterNames(children: ReadonlyArray<IRun>, cfg: ISweepConfig | null): string[] {
  const names = Object.keys(cfg?.parameter_space ?? {});
  const known = new Set(names);
  const extra = new Set<string>();
  for (const c of children) {
    for (const k of Object.keys(hyperparameters(c))) {
      if (!known.has(k)) {
        extra.add(k);
      }
    }
  }
  return [...names, ...Array.from(extra).sort()];
}

export function formatParamValue(v: unknown): string {
  if (typeof v === 'number') {
    return formatValue(v);
  }
  if (v === undefined || v === null) {
    return '';
  }
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** "x=0.5 y=1": a child's values in one line, in ``names`` order when given. */
export function formatHyperparameters(hp: Record<string, unknown>, names?: ReadonlyArray<string>): string {
  const keys = names ? names.filter(n => n in hp) : Object.keys(hp);
  return keys.map(k => `${paramLabel(k)}=${formatParamValue(hp[k])}`).join(' ');
}

/** "BanditPolicy (slack_factor 0.1, delay_evaluation 2)"; "no early termination" for none. */
export function policySummary(policy: ISweepConfig['policy']): string {
  if (!policy || !policy.name || policy.name === 'NoTerminationPolicy') {
    return 'no early termination';
  }
  const args = Object.entries(policy)
    .filter(([k, v]) => k !== 'name' && v !== null && v !== undefined && v !== false)
    .map(([k, v]) => `${k} ${formatParamValue(v)}`);
  return args.length ? `${policy.name} (${args.join(', ')})` : policy.name;
}

/** The text of a sweep's goal: "maximize val_acc". */
export function goalText(cfg: ISweepConfig): string {
  return `${cfg.primary_metric_goal} ${cfg.primary_metric_name}`;
}
