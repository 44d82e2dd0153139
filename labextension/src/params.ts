/**
 * A run's parameters as people read them: its script arguments parsed into name/value where
 * they look like ``--name value`` / ``--name=value`` / ``--flag``, a sweep child's
 * hyperparameters, and the parameters it logged (MLflow's log_param, ``properties.params``);
 * its own tags (not the ones the system adds); and one line of both for a sidebar row.
 * Pure: jest tests it directly.
 */

import { formatValue } from './format';
import { IRun } from './runs';

export type ParamValue = string | number | boolean;

export interface IParam {
  name: string;
  value: ParamValue;
  /** Where it came from: the command line, the sweep's sampler, or the script's log_param. */
  source: 'argument' | 'hyperparameter' | 'logged';
}

/** Tags the system sets, which are not the user's to compare. */
const SYSTEM_TAGS = new Set(['display_name', 'resubmit_of', 'mlflow.runName', 'mlflow.user', 'mlflow.source.name', 'mlflow.source.type']);

/** "0.1" -> 0.1, "10" -> 10, "true" stays a string (a script decides what it means). */
function asValue(text: string): ParamValue {
  if (/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) {
    const n = Number(text);
    if (isFinite(n)) {
      return n;
    }
  }
  return text;
}

/** Whether ``a`` starts an option (``--x``, ``-x``) rather than being a value like ``-0.5``. */
function isOption(a: string): boolean {
  return /^--?[A-Za-z_]/.test(a);
}

/**
 * Arguments as name/value: ``--lr 0.1`` and ``--lr=0.1`` give lr=0.1, ``--fast`` (followed by
 * another option or nothing) gives fast=true, ``--sizes 1 2 3`` gives sizes="1 2 3", and
 * words before any option are arg1, arg2, ... An option given twice keeps its last value, as
 * argparse does.
 */
export function parseArguments(args: ReadonlyArray<string>): IParam[] {
  const out = new Map<string, IParam>();
  let positional = 0;
  let i = 0;
  while (i < args.length) {
    const a = String(args[i]);
    if (a === '--') {
      for (const rest of args.slice(i + 1)) {
        positional++;
        out.set(`arg${positional}`, { name: `arg${positional}`, value: asValue(String(rest)), source: 'argument' });
      }
      break;
    }
    if (!isOption(a)) {
      positional++;
      out.set(`arg${positional}`, { name: `arg${positional}`, value: asValue(a), source: 'argument' });
      i++;
      continue;
    }
    const eq = a.indexOf('=');
    if (eq > 0) {
      const name = a.slice(0, eq).replace(/^-+/, '');
      out.set(name, { name, value: asValue(a.slice(eq + 1)), source: 'argument' });
      i++;
      continue;
    }
    const name = a.replace(/^-+/, '');
    const values: string[] = [];
    i++;
    while (i < args.length && !isOption(String(args[i])) && String(args[i]) !== '--') {
      values.push(String(args[i]));
      i++;
    }
    out.delete(name); // a repeated option moves to where it was last given
    out.set(name, {
      name,
      value: values.length === 0 ? true : values.length === 1 ? asValue(values[0]) : values.join(' '),
      source: 'argument'
    });
  }
  return Array.from(out.values());
}

function scalar(v: unknown): ParamValue {
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'string') {
    return v;
  }
  return JSON.stringify(v);
}

/**
 * Every parameter of a run: its arguments, then a sweep's hyperparameters and the parameters
 * it logged where they add a name (an argument the sampler chose is the same parameter).
 */
export function runParameters(run: IRun): IParam[] {
  const params = parseArguments(run.arguments ?? []);
  const seen = new Set(params.map(p => p.name));
  const add = (source: IParam['source'], values: unknown) => {
    if (!values || typeof values !== 'object') {
      return;
    }
    for (const [k, v] of Object.entries(values as Record<string, unknown>)) {
      const name = k.replace(/^-+/, '');
      if (!seen.has(name)) {
        seen.add(name);
        params.push({ name, value: scalar(v), source });
      }
    }
  };
  add('hyperparameter', run.properties?.hyperparameters);
  add('logged', run.properties?.params);
  return params;
}

/** The user's own tags, in the order they were set (display_name and the system's left out). */
export function userTags(run: IRun): Array<[string, string]> {
  return Object.entries(run.tags ?? {}).filter(([k]) => !SYSTEM_TAGS.has(k) && !k.startsWith('_') && k !== 'primary_metric');
}

export function formatParam(v: ParamValue | undefined): string {
  if (v === undefined) {
    return '';
  }
  return typeof v === 'number' ? formatValue(v) : String(v);
}

/** "lr=0.1 epochs=12 · tag team=vision": the run's parameters, then its tags, on one line. */
export function parametersLine(run: IRun): string {
  const params = runParameters(run).map(p => (p.value === true ? p.name : `${p.name}=${formatParam(p.value)}`));
  const tags = userTags(run).map(([k, v]) => (v ? `${k}=${v}` : k));
  return [params.join(' '), tags.length ? `tags ${tags.join(' ')}` : ''].filter(Boolean).join(' · ');
}

/**
 * The parameter names to show as columns when comparing ``runs``: the ones whose values differ
 * between runs first (what the comparison is about), then the ones they share; in first-seen
 * order within each.
 */
export function comparedParameters(runs: ReadonlyArray<IRun>): { names: string[]; differing: Set<string> } {
  const values = new Map<string, Set<string>>();
  const present = new Map<string, number>();
  for (const run of runs) {
    for (const p of runParameters(run)) {
      if (!values.has(p.name)) {
        values.set(p.name, new Set());
        present.set(p.name, 0);
      }
      values.get(p.name)!.add(formatParam(p.value));
      present.set(p.name, present.get(p.name)! + 1);
    }
  }
  const differing = new Set<string>();
  for (const [name, vs] of values) {
    if (vs.size > 1 || present.get(name)! < runs.length) {
      differing.add(name);
    }
  }
  const names = Array.from(values.keys());
  return { names: [...names.filter(n => differing.has(n)), ...names.filter(n => !differing.has(n))], differing };
}

/** name -> value of a run's parameters, for columns and chart axes. */
export function parameterMap(run: IRun): Record<string, ParamValue> {
  return Object.fromEntries(runParameters(run).map(p => [p.name, p.value]));
}

/** Whether a smaller value of ``metric`` is better (losses, errors), as its name says. */
export function lowerIsBetter(metric: string): boolean {
  return /loss|err|mse|mae|rmse|perplexity|wer|cer|time|latency/i.test(metric);
}

/** The metric compare sets parameters against: the runs' most common primary metric. */
export function defaultCompareMetric(runs: ReadonlyArray<IRun | undefined>, names: ReadonlyArray<string>): string {
  const counts = new Map<string, number>();
  for (const r of runs) {
    const n = r?.primary_metric?.name;
    if (n && names.includes(n)) {
      counts.set(n, (counts.get(n) ?? 0) + 1);
    }
  }
  let best = names[0] ?? '';
  let count = 0;
  for (const [n, c] of counts) {
    if (c > count) {
      best = n;
      count = c;
    }
  }
  return best;
}
