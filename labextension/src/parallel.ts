/**
 * The geometry of a sweep's parallel-coordinates chart: one axis per hyperparameter and one for
 * the primary metric, each mapping a value to a position in [0, 1] (0 at the bottom), and one
 * polyline per child. An axis takes its range from the parameter space where it says one
 * (choice, randint, uniform, loguniform ...) widened to the values the children have; choices
 * that are not all numbers, and values that are not numbers, make a category axis. Pure: jest
 * tests it directly.
 */

import { formatValue } from './format';
import { ticks } from './metrics';
import { IRun } from './runs';
import { childMetric, formatParamValue, hyperparameters, ISweepConfig, paramLabel, ParamExpression } from './sweeps';

export type AxisKind = 'linear' | 'log' | 'category';

export interface IAxis {
  /** The hyperparameter's name ("--x"), or the metric's name for the metric axis. */
  key: string;
  label: string;
  kind: AxisKind;
  /** Numeric axes: the bounds shown (bottom, top). */
  domain: [number, number];
  /** Category axes: the values, bottom to top. */
  categories: string[];
  metric: boolean;
}

export interface ITick {
  pos: number;
  label: string;
}

export interface IPolyline {
  runId: string;
  /** Per axis, the position in [0, 1], or null where the child has no value there. */
  positions: Array<number | null>;
  /** The child's primary metric (null while it has none). */
  metric: number | null;
}

function finite(v: unknown): v is number {
  return typeof v === 'number' && isFinite(v);
}

/** Bounds from the parameter expression, when it has them: [low, high] and whether log. */
function expressionRange(expr: ParamExpression | undefined): { domain: [number, number]; log: boolean } | null {
  if (!Array.isArray(expr) || !Array.isArray(expr[1])) {
    return null;
  }
  const [kind, args] = expr;
  const nums = args.filter(finite);
  switch (kind) {
    case 'randint':
      return nums.length >= 1 ? { domain: [0, Math.max(0, nums[0] - 1)], log: false } : null;
    case 'uniform':
    case 'quniform':
      return nums.length >= 2 ? { domain: [Math.min(nums[0], nums[1]), Math.max(nums[0], nums[1])], log: false } : null;
    case 'loguniform':
    case 'qloguniform':
      return nums.length >= 2 ? { domain: [Math.exp(Math.min(nums[0], nums[1])), Math.exp(Math.max(nums[0], nums[1]))], log: true } : null;
    default:
      return null;
  }
}

function choices(expr: ParamExpression | undefined): unknown[] | null {
  if (Array.isArray(expr) && expr[0] === 'choice' && Array.isArray(expr[1]) && Array.isArray(expr[1][0])) {
    return expr[1][0] as unknown[];
  }
  return null;
}

function isLogExpression(expr: ParamExpression | undefined): boolean {
  return Array.isArray(expr) && typeof expr[0] === 'string' && /log/.test(expr[0]);
}

/** A flat range gets a band around its value (multiplicative on a log axis). */
function widen(lo: number, hi: number, log: boolean): [number, number] {
  if (lo < hi) {
    return [lo, hi];
  }
  if (log) {
    return [lo / 2, hi * 2];
  }
  const pad = Math.abs(lo) * 0.1 || 1;
  return [lo - pad, hi + pad];
}

/** The axis of one hyperparameter, from its expression and the values the children have. */
export function paramAxis(name: string, expr: ParamExpression | undefined, values: ReadonlyArray<unknown>): IAxis {
  const present = values.filter(v => v !== undefined && v !== null);
  const options = choices(expr);
  const numeric = (options ?? []).every(finite) && present.every(finite);
  const base = { key: name, label: paramLabel(name), metric: false, categories: [] as string[] };
  if (!numeric || (options === null && present.length === 0 && !expressionRange(expr))) {
    const cats: string[] = [];
    for (const v of [...(options ?? []), ...present]) {
      const s = formatParamValue(v);
      if (!cats.includes(s)) {
        cats.push(s);
      }
    }
    return { ...base, kind: 'category', domain: [0, 1], categories: cats };
  }
  const nums = [...(options ?? []), ...present] as number[];
  const range = expressionRange(expr);
  let lo = Math.min(...nums, ...(range ? [range.domain[0]] : []));
  let hi = Math.max(...nums, ...(range ? [range.domain[1]] : []));
  const log = (range?.log ?? isLogExpression(expr)) && lo > 0;
  [lo, hi] = widen(lo, hi, log);
  return { ...base, kind: log ? 'log' : 'linear', domain: [lo, hi] };
}

/** The primary metric's axis: the range of the values the children have (0..1 before any). */
export function metricAxis(name: string, values: ReadonlyArray<number | null>): IAxis {
  const nums = values.filter(finite);
  const domain: [number, number] = nums.length ? widen(Math.min(...nums), Math.max(...nums), false) : [0, 1];
  return { key: name, label: name, kind: 'linear', domain, categories: [], metric: true };
}

/** Every axis of a sweep's chart: its hyperparameters (``names``), then its primary metric. */
export function buildAxes(children: ReadonlyArray<IRun>, names: ReadonlyArray<string>, cfg: ISweepConfig): IAxis[] {
  const axes = names.map(n =>
    paramAxis(n, cfg.parameter_space?.[n], children.map(c => hyperparameters(c)[n]))
  );
  axes.push(metricAxis(cfg.primary_metric_name, children.map(c => childMetric(c, cfg.primary_metric_name))));
  return axes;
}

/** Where ``value`` sits on ``axis``, in [0, 1] from the bottom; null when it has no place. */
export function axisPosition(axis: IAxis, value: unknown): number | null {
  if (axis.kind === 'category') {
    if (value === undefined || value === null) {
      return null;
    }
    const i = axis.categories.indexOf(formatParamValue(value));
    if (i < 0) {
      return null;
    }
    return axis.categories.length === 1 ? 0.5 : i / (axis.categories.length - 1);
  }
  if (!finite(value)) {
    return null;
  }
  const [lo, hi] = axis.domain;
  if (axis.kind === 'log') {
    if (value <= 0) {
      return null;
    }
    return clamp((Math.log(value) - Math.log(lo)) / (Math.log(hi) - Math.log(lo)));
  }
  return clamp((value - lo) / (hi - lo));
}

function clamp(x: number): number {
  return Math.min(1, Math.max(0, x));
}

/** Labelled ticks of an axis: round values (powers of ten on a log axis), or each category. */
export function axisTicks(axis: IAxis, count = 4): ITick[] {
  if (axis.kind === 'category') {
    return axis.categories.map(c => ({ pos: axisPosition(axis, c) as number, label: c }));
  }
  const [lo, hi] = axis.domain;
  let values: number[];
  if (axis.kind === 'log') {
    values = [];
    for (let e = Math.ceil(Math.log10(lo) - 1e-9); e <= Math.floor(Math.log10(hi) + 1e-9); e++) {
      values.push(Math.pow(10, e));
    }
    if (values.length < 2) {
      values = [lo, hi];
    }
  } else {
    values = ticks(lo, hi, count).filter(v => v >= lo - 1e-12 && v <= hi + 1e-12);
  }
  return values.map(v => ({ pos: axisPosition(axis, v) as number, label: formatValue(v) }));
}

/** One polyline per child: its position on every axis. */
export function polylines(children: ReadonlyArray<IRun>, axes: ReadonlyArray<IAxis>, cfg: ISweepConfig): IPolyline[] {
  return children.map(c => {
    const hp = hyperparameters(c);
    const metric = childMetric(c, cfg.primary_metric_name);
    return {
      runId: c.id,
      metric,
      positions: axes.map(a => axisPosition(a, a.metric ? metric : hp[a.key]))
    };
  });
}

/**
 * How good a value is among the sweep's, in [0, 1] (1 = the best per the goal), from the
 * metric axis' range; null without a value.
 */
export function quality(value: number | null, axis: IAxis, goal: ISweepConfig['primary_metric_goal']): number | null {
  const pos = axisPosition(axis, value);
  if (pos === null) {
    return null;
  }
  return goal === 'minimize' ? 1 - pos : pos;
}

/** SVG path data through the points, broken where one is missing (null); a lone point is a dot. */
export function pathData(points: ReadonlyArray<[number, number] | null>): string {
  const parts: string[] = [];
  let segment: Array<[number, number]> = [];
  const flush = () => {
    if (segment.length) {
      const d = segment.map(([x, y], i) => `${i ? 'L' : 'M'}${x.toFixed(1)},${y.toFixed(1)}`).join('');
      parts.push(segment.length === 1 ? `${d}h0.01` : d);
      segment = [];
    }
  };
  for (const p of points) {
    if (p === null) {
      flush();
    } else {
      segment.push(p);
    }
  }
  flush();
  return parts.join('');
}
