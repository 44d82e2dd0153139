import { execFileSync } from 'child_process';

import { datasetInputsText, pyBlock, sdkCode } from '../src/sdk';
import { makeRun } from './fixtures';

describe('sdkCode', () => {
  const base = makeRun({
    experiment: 'mnist',
    status: 'Completed',
    script: 'train.py',
    compute_target: 'local',
    properties: { source_directory: '/home/me/src' }
  });

  function configLines(code: string): string[] {
    const start = code.indexOf('config = ScriptRunConfig(\n');
    const end = code.indexOf('\n)\n', start);
    expect(start).toBeGreaterThanOrEqual(0);
    expect(end).toBeGreaterThan(start);
    return code.slice(start, end).split('\n').slice(1);
  }

  it('writes a complete submission for a plain run', () => {
    const code = sdkCode(base);
    expect(code).toBe(
      [
        'from kernel_lib import Workspace, Experiment, ScriptRunConfig',
        '',
        'ws = Workspace.default()',
        'config = ScriptRunConfig(',
        "    source_directory='/home/me/src',",
        "    script='train.py',",
        ')',
        "run = Experiment(ws, 'mnist').submit(config)",
        'run.wait_for_completion(show_output=True)',
        ''
      ].join('\n')
    );
  });

  it('leaves numeric arguments unquoted and quotes the rest', () => {
    const code = sdkCode({ ...base, arguments: ['--lr', '0.1', '--epochs', '10', '--name', 'it\'s', '--shift', '-2'] });
    expect(code).toContain("    arguments=['--lr', 0.1, '--epochs', 10, '--name', 'it\\'s', '--shift', -2],");
  });

  it('quotes arguments whose Python number would not give back the same text', () => {
    // Python's str() of the value is what the script would receive: 1.10 -> "1.1", 1e5 -> "100000.0";
    // -05 and 007 are not even valid Python.
    const code = sdkCode({
      ...base,
      arguments: ['1.10', '1e5', '-05', '007', '-0', '0.00001', '1.0', '0.0', '-0.25', '123456789012345678901']
    });
    expect(code).toContain(
      "    arguments=['1.10', '1e5', '-05', '007', '-0', '0.00001', 1.0, 0.0, -0.25, 123456789012345678901],"
    );
  });

  it('leaves arguments out when there are none', () => {
    expect(sdkCode({ ...base, arguments: [] })).not.toContain('arguments=');
  });

  it('names the compute target only when it is not local', () => {
    expect(sdkCode(base)).not.toContain('compute_target');
    expect(sdkCode({ ...base, compute_target: 'gpu-box' })).toContain("    compute_target='gpu-box',");
  });

  it('gets the environment by name and version', () => {
    const code = sdkCode({ ...base, properties: { ...base.properties, environment: { name: 'torch-env', version: 3 } } });
    expect(code).toContain('from kernel_lib import Workspace, Experiment, ScriptRunConfig, Environment\n');
    expect(code).toContain("    environment=Environment.get(ws, 'torch-env', version=3),");
    const latest = sdkCode({ ...base, properties: { ...base.properties, environment: { name: 'torch-env', version: null } } });
    expect(latest).toContain("    environment=Environment.get(ws, 'torch-env'),");
  });

  it('writes a PyTorchConfiguration for a 2-node x 2-process gloo job', () => {
    const code = sdkCode({
      ...base,
      properties: {
        ...base.properties,
        distributed: { kind: 'pytorch', nodes: 2, procs_per_node: 2, backend: 'gloo', max_restarts: 0 }
      }
    });
    expect(code).toContain('ScriptRunConfig, PyTorchConfiguration\n');
    expect(code).toContain(
      "    distributed_job_config=PyTorchConfiguration(communication_backend='Gloo', process_count=4, node_count=2),"
    );
  });

  it('defaults the PyTorch backend to Nccl and keeps max_restarts', () => {
    const code = sdkCode({
      ...base,
      properties: { ...base.properties, distributed: { kind: 'pytorch', nodes: 1, procs_per_node: 8, max_restarts: 2 } }
    });
    expect(code).toContain(
      "PyTorchConfiguration(communication_backend='Nccl', process_count=8, node_count=1, max_restarts=2),"
    );
  });

  it('writes an MpiConfiguration for an MPI job', () => {
    const code = sdkCode({
      ...base,
      properties: { ...base.properties, distributed: { kind: 'mpi', nodes: 3, procs_per_node: 4 } }
    });
    expect(code).toContain('ScriptRunConfig, MpiConfiguration\n');
    expect(code).toContain('    distributed_job_config=MpiConfiguration(process_count_per_node=4, node_count=3),');
    expect(code).not.toContain('PyTorchConfiguration');
  });

  it("keeps the run's own tags but not resubmit_of or system tags", () => {
    const code = sdkCode({
      ...base,
      tags: { lr: '0.1', owner: 'al', resubmit_of: 'mnist_1_x', _system: 'y' }
    });
    expect(code).toContain("run = Experiment(ws, 'mnist').submit(config, tags={'lr': '0.1', 'owner': 'al'})\n");
    expect(code).not.toContain('resubmit_of');
    const onlySystem = sdkCode({ ...base, tags: { resubmit_of: 'x' } });
    expect(onlySystem).toContain("run = Experiment(ws, 'mnist').submit(config)\n");
  });

  it('quotes the workspace path and other strings for Python', () => {
    const code = sdkCode({ ...base, experiment: "bob's exp" }, "/home/o'brien/ws\\x");
    expect(code).toContain("ws = Workspace('/home/o\\'brien/ws\\\\x')\n");
    expect(code).toContain("Experiment(ws, 'bob\\'s exp')");
    const multiLine = sdkCode({ ...base, tags: { note: 'a\nb' } });
    expect(multiLine).toContain("tags={'note': 'a\\nb'}");
  });

  it('ships a %%train cell through extra_files when there is no source directory', () => {
    const code = sdkCode({
      ...base,
      script: 'cell_train.py',
      properties: { source_directory: null, extra_files: ['cell_train.py'] }
    });
    const cfg = configLines(code);
    expect(cfg[0]).toBe('    source_directory=None,');
    expect(cfg).toContain(
      "    extra_files={'cell_train.py': open('cell_train.py').read()},  # the %%train cell's text (loading…)"
    );
  });

  it('ships a %%train cell through extra_files also when it ran with a source directory', () => {
    // `%%train --source DIR` sends the cell as extra_files next to DIR; without them the
    // generated ScriptRunConfig would look for the script in DIR and fail.
    const code = sdkCode({
      ...base,
      script: 'cell_train.py',
      properties: { source_directory: '/home/me/src', extra_files: ['cell_train.py'] }
    });
    expect(configLines(code)).toContain(
      "    extra_files={'cell_train.py': open('cell_train.py').read()},  # the %%train cell's text (loading…)"
    );
  });

  it('writes the cell itself into the code once its text is loaded', () => {
    const cell = "import time\nprint('epoch', 1)\n";
    const code = sdkCode({ ...base, script: 'cell_train.py', properties: { source_directory: null, extra_files: ['cell_train.py'] } }, undefined, cell);
    expect(code).toContain(`cell = '''import time\nprint('epoch', 1)\n'''\n`);
    expect(configLines(code)).toContain("    extra_files={'cell_train.py': cell},  # the %%train cell's text");
    expect(code).not.toContain('open(');
  });

  it('quotes any cell so that Python reads back the same text', () => {
    // Python itself parses each literal (python3 is on every machine that runs these tests).
    const texts = [
      "print('x')\n",
      'path = "C:\\\\temp\\\\new"\nprint(path)\n',
      "s = '''a'''\n",
      'd = """doc"""\nt = \'\'\'x\'\'\'\n',
      "ends with a quote '",
      'ends with a backslash \\',
      'tab\tand unicode é ✓\n'
    ];
    const literals = texts.map(pyBlock);
    const out = execFileSync('python3', ['-c', 'import ast, json, sys; print(json.dumps([ast.literal_eval(s) for s in json.load(sys.stdin)]))'],
      { input: JSON.stringify(literals) }).toString();
    expect(JSON.parse(out)).toEqual(texts);
    expect(literals[0].startsWith("'''")).toBe(true);
    expect(literals[2].startsWith('"""')).toBe(true);
  });

  it('adds no extra_files for a run from a source directory', () => {
    expect(sdkCode(base)).not.toContain('extra_files');
  });

  it('puts every ScriptRunConfig argument on its own line ending with a comma', () => {
    const code = sdkCode({
      ...base,
      arguments: ['--x', '1'],
      compute_target: 'cluster',
      properties: {
        ...base.properties,
        environment: { name: 'e', version: 1 },
        distributed: { kind: 'mpi', nodes: 1, procs_per_node: 2 }
      }
    });
    const cfg = configLines(code);
    expect(cfg.map(l => /^ {4}[a-z_]+=/.test(l) && l.trimEnd().endsWith(','))).toEqual(cfg.map(() => true));
    expect(cfg.map(l => l.trim().split('=')[0])).toEqual([
      'source_directory',
      'script',
      'arguments',
      'compute_target',
      'environment',
      'distributed_job_config'
    ]);
  });
});

describe('dataset inputs', () => {
  const inputs = [{ name: 'fowl', dataset: 'fowl', version: 3, mode: 'download' }];

  it('gives back the exact version a run read, in place of its placeholder argument', () => {
    const run = makeRun({
      experiment: 'birds',
      status: 'Completed',
      script: 'train.py',
      compute_target: 'local',
      arguments: ['--data_dir', 'DatasetConsumptionConfig:fowl', '--other', 'DatasetConsumptionConfig:nope'],
      properties: { source_directory: '/src', input_datasets: inputs }
    });
    const code = sdkCode(run);
    expect(code).toContain('from kernel_lib import Workspace, Experiment, ScriptRunConfig, Dataset');
    expect(code).toContain(
      "arguments=['--data_dir', Dataset.get_by_name(ws, 'fowl', version=3).as_named_input('fowl').as_download(), " +
        "'--other', 'DatasetConsumptionConfig:nope'],"
    );
  });

  it('names them in the overview', () => {
    expect(datasetInputsText(undefined)).toBe('—');
    expect(datasetInputsText([...inputs, { name: 'tab', dataset: 'table', version: 1, mode: 'mount' }])).toBe(
      'fowl = fowl:3 (download), tab = table:1 (mount)'
    );
  });
});
