#!/usr/bin/env node
/*
 * Build (or watch) the prebuilt JupyterLab extension without network access.
 *
 * `jupyter labextension build .` on its own resolves the JupyterLab core
 * metadata (@jupyterlab/core-meta) from the npm registry / GitHub. We instead
 * point it at the `staging/` folder shipped inside the *installed* jupyterlab
 * Python package, so the build is offline, deterministic and matches the
 * JupyterLab version the extension will actually run in.
 *
 * Everything runs through one Python interpreter (no shell, no PATH lookup of
 * `jupyter` / `jupyter-builder`), so inside pip's isolated build environment
 * the jupyterlab from [build-system].requires is the one used.
 *
 * Usage:
 *   node scripts/build-labextension.js                 # production build
 *   node scripts/build-labextension.js --development   # development build
 *   node scripts/build-labextension.js --watch         # tsc -w + labextension watch
 *
 * Environment:
 *   JUPYTER_TRAIN_PYTHON  Python interpreter to use (default: python3, then python).
 */
'use strict';

const { execFileSync, spawn } = require('child_process');
const fs = require('fs');
const path = require('path');

const EXT_DIR = path.resolve(__dirname, '..');

// Prints JSON describing how to invoke the builder in this interpreter.
// JupyterLab >= 4.6 delegates `jupyter labextension build` to the separate
// `jupyter_builder` package (and deprecates --core-path in favour of
// --core-package-file); older 4.x only has jupyterlab.labextensions.
const PROBE = [
  'import json, os, importlib.util, jupyterlab',
  'staging = os.path.join(os.path.dirname(jupyterlab.__file__), "staging")',
  'assert os.path.isfile(os.path.join(staging, "package.json")), staging',
  'has_builder = importlib.util.find_spec("jupyter_builder") is not None',
  'print(json.dumps({"staging": staging, "version": jupyterlab.__version__,',
  '  "module": "jupyter_builder.main" if has_builder else "jupyterlab.labextensions",',
  '  "core": ["--core-package-file", os.path.join(staging, "package.json")] if has_builder',
  '          else ["--core-path", staging]}))'
].join('\n');

function findPython() {
  const candidates = process.env.JUPYTER_TRAIN_PYTHON
    ? [process.env.JUPYTER_TRAIN_PYTHON]
    : process.platform === 'win32'
      ? ['python', 'py']
      : ['python3', 'python'];
  const errors = [];
  for (const python of candidates) {
    try {
      const out = execFileSync(python, ['-c', PROBE], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe']
      });
      return { python, info: JSON.parse(out.trim().split('\n').pop()) };
    } catch (err) {
      errors.push(`  ${python}: ${(err.stderr || err.message || '').toString().trim()}`);
    }
  }
  console.error(
    'build-labextension: could not find a Python with jupyterlab installed.\n' +
      'Install jupyterlab>=4.2,<5 or set JUPYTER_TRAIN_PYTHON.\n' +
      errors.join('\n')
  );
  process.exit(1);
}

function main() {
  const args = process.argv.slice(2);
  const watch = args.includes('--watch');
  const development = watch || args.includes('--development');
  const sourceMap = development || args.includes('--source-map');

  const { python, info } = findPython();
  const builderArgs = ['-m', info.module, watch ? 'watch' : 'build', ...info.core];
  // Both are traitlets *aliases* as well as flags, so a bare `--development`
  // would swallow the following argument; always pass an explicit value.
  if (development) {
    builderArgs.push('--development=True');
  }
  if (sourceMap) {
    builderArgs.push('--source-map=True');
  }
  builderArgs.push('.');

  console.log(
    `build-labextension: jupyterlab ${info.version} (${python}), core: ${info.staging}`
  );

  if (!watch) {
    try {
      execFileSync(python, builderArgs, { cwd: EXT_DIR, stdio: 'inherit' });
    } catch (err) {
      process.exit(typeof err.status === 'number' ? err.status : 1);
    }
    // The install record travels with the build output (the wheel maps that folder to
    // share/jupyter/labextensions/): one copy, whichever kind of build made the folder.
    const out = path.resolve(EXT_DIR, require(path.join(EXT_DIR, 'package.json')).jupyterlab.outputDir);
    fs.copyFileSync(path.join(EXT_DIR, 'install.json'), path.join(out, 'install.json'));
    return;
  }

  // Watch mode: recompile TypeScript and rebuild the bundle on change. Note the
  // labextension watcher needs the extension to be develop-installed
  // (`jupyter labextension develop --overwrite .` from the repo root).
  const tsc = require.resolve('typescript/bin/tsc');
  const children = [
    spawn(process.execPath, [tsc, '-w', '--sourceMap', '--preserveWatchOutput'], {
      cwd: EXT_DIR,
      stdio: 'inherit'
    }),
    spawn(python, builderArgs, { cwd: EXT_DIR, stdio: 'inherit' })
  ];
  const stopAll = () => children.forEach(child => child.kill());
  process.on('SIGINT', stopAll);
  process.on('SIGTERM', stopAll);
  children.forEach(child =>
    child.on('exit', code => {
      stopAll();
      process.exitCode = code || 0;
    })
  );
}

main();
