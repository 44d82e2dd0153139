/**
 * The Python (kernel_lib SDK) the panel writes for a run, and the quoting it needs: strings,
 * values and dicts as Python literals, arguments as numbers only where Python gives the same
 * text back. Pure: jest tests it directly.
 */

import { IRun } from './runs';

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

/**
 * ``text`` as a Python string literal that reads as the text: a triple-quoted block (with
 * backslashes doubled), or a one-line literal when the text holds both kinds of triple quote.
 */
export function pyBlock(text: string): string {
  for (const q of ["'''", '"""']) {
    if (!text.includes(q)) {
      let body = text.replace(/\\/g, '\\\\');
      if (body.endsWith(q[0])) {
        body = body.slice(0, -1) + '\\' + q[0];
      }
      return `${q}${body}${q}`;
    }
  }
  return pyStr(text);
}

/** A run's dataset input (properties.input_datasets), as the server recorded it. */
export interface IDatasetInput {
  name: string;
  dataset: string;
  version: number;
  mode: string;
}

/** A run's dataset inputs for the overview: "fowl = fowl:1 (mount)", or "—". */
export function datasetInputsText(inputs: ReadonlyArray<IDatasetInput> | undefined): string {
  if (!inputs || !inputs.length) {
    return '—';
  }
  return inputs.map(d => `${d.name} = ${d.dataset}:${d.version} (${d.mode})`).join(', ');
}

/** What an argument ``DatasetConsumptionConfig:<name>`` stands for (rank_entry's convention). */
export const DATASET_ARG_PREFIX = 'DatasetConsumptionConfig:';

/** The SDK expression of a dataset input: the exact version the run read, mounted or downloaded. */
function pyInput(d: IDatasetInput): string {
  const how = d.mode === 'download' ? 'as_download' : 'as_mount';
  return `Dataset.get_by_name(ws, ${pyStr(d.dataset)}, version=${d.version}).as_named_input(${pyStr(d.name)}).${how}()`;
}

/**
 * Arguments as Python values: numbers stay numbers ("0.1" -> 0.1), a dataset input's
 * placeholder becomes the input itself, the rest strings.
 */
function pyArgs(args: ReadonlyArray<string>, inputs: ReadonlyArray<IDatasetInput> = []): string {
  const byName = new Map(inputs.map(d => [d.name, d]));
  return `[${args
    .map(a => {
      const input = a.startsWith(DATASET_ARG_PREFIX) ? byName.get(a.slice(DATASET_ARG_PREFIX.length)) : undefined;
      if (input) {
        return pyInput(input);
      }
      return isPyNumber(a) ? a : pyStr(a);
    })
    .join(', ')}]`;
}

/**
 * Python (kernel_lib SDK) that submits the same run again: the workspace, the experiment,
 * a ScriptRunConfig with the script, arguments, compute, environment and distribution, and
 * the run's own tags (the ones the system adds are left out). A %%train cell's text
 * (``cellText``, from the run's snapshot) is written into the code, so it runs as it is.
 */
export function sdkCode(run: IRun, workspacePath?: string, cellText?: string): string {
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
  const inputs = (props.input_datasets ?? []) as IDatasetInput[];
  if (run.arguments && run.arguments.length) {
    cfg.push(`    arguments=${pyArgs(run.arguments, inputs)},`);
    if (run.arguments.some(a => a.startsWith(DATASET_ARG_PREFIX) && inputs.some(d => a.endsWith(`:${d.name}`)))) {
      imports.push('Dataset');
    }
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
    const name = pyStr(run.script ?? 'cell.py');
    cfg.push(cellText === undefined
      ? `    extra_files={${name}: open(${name}).read()},  # the %%train cell's text (loading…)`
      : `    extra_files={${name}: cell},  # the %%train cell's text`);
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
  if (fromCell && cellText !== undefined) {
    lines.push(`cell = ${pyBlock(cellText)}`);
  }
  lines.push('config = ScriptRunConfig(');
  lines.push(...cfg);
  lines.push(')');
  const tagArg = Object.keys(tags).length ? `, tags=${pyDict(tags)}` : '';
  lines.push(`run = Experiment(ws, ${pyStr(run.experiment)}).submit(config${tagArg})`);
  lines.push('run.wait_for_completion(show_output=True)');
  return lines.join('\n') + '\n';
}
