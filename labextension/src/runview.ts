/**
 * A run in the main area: overview (spec, arguments, environment, compute, time per phase),
 * logs (per rank, follow, search, download), metrics (charts), outputs (download, open in the
 * file browser, register as a model) and actions (cancel, resubmit, register, copy SDK code).
 * Follows the run live over its WebSocket (/train/api/runs/{id}/stream), resuming where it
 * left off after a drop. The Logs and Metrics tabs are RunLogs (runlogs.ts) and RunMetrics
 * (runmetrics.ts).
 */

import { Clipboard, InputDialog } from '@jupyterlab/apputils';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { IInfo } from './api';
import { ITrainContext, notifyError, notifySuccess } from './context';
import { isTerminal } from './contract';
import { append, button, h, saveBlob, statusBadge } from './dom';
import { formatBytes, formatDuration, formatTime, formatValue } from './format';
import { trainIcon } from './icons';
import { previewKind, renderPreview } from './outputpreview';
import { RunLogs } from './runlogs';
import { RunMetrics } from './runmetrics';
import { IRun, phaseSpans, runDuration } from './runs';
import { formatParam, runParameters, userTags } from './params';
import { datasetInputsText, IDatasetInput, sdkCode } from './sdk';

export type RunTab = 'overview' | 'logs' | 'metrics' | 'outputs';
const TABS: ReadonlyArray<[RunTab, string]> = [
  ['overview', 'Overview'],
  ['logs', 'Logs'],
  ['metrics', 'Metrics'],
  ['outputs', 'Outputs']
];

/** Where a parameter came from, as the Parameters table says it. */
const PARAM_SOURCES: Record<string, string> = {
  argument: 'argument',
  hyperparameter: 'sweep',
  logged: 'logged'
};

export class RunView extends Widget {
  constructor(
    readonly runId: string,
    private readonly ctx: ITrainContext
  ) {
    super();
    this.id = `jupyter-train-run-${runId}`;
    this.addClass('jp-train-runview');
    this.node.dataset.testid = 'jp-train-runview';
    this.node.dataset.runId = runId;
    this.title.label = runId;
    this.title.caption = `Run ${runId}`;
    this.title.icon = trainIcon;
    this.title.closable = true;

    this._header = h('div', { class: 'jp-train-runview-header' });
    this._actions = h('div', { class: 'jp-train-actions' });
    this._cancel = button('Cancel', () => void this.cancel(), { testid: 'jp-train-cancel', title: 'Stop this run (its whole process tree)' });
    this._resubmit = button('Resubmit', () => void this.resubmit(), { testid: 'jp-train-resubmit', title: 'Run the same spec again' });
    this._register = button('Register model…', () => void this.registerModel(), { testid: 'jp-train-register', title: 'Register one of its outputs as a model' });
    const copy = button('Copy SDK code', () => this.copyCode(), { testid: 'jp-train-copy-code', title: 'Python that submits this run again' });
    this._actions.append(this._cancel, this._resubmit, this._register, copy);

    const nav = h('div', { class: 'jp-train-tabs', role: 'tablist' });
    for (const [tab, label] of TABS) {
      const b = h('button', {
        type: 'button',
        class: 'jp-train-tab',
        role: 'tab',
        'data-tab': tab,
        testid: `jp-train-tab-${tab}`,
        onclick: () => this.showTab(tab)
      }, label);
      nav.appendChild(b);
      this._tabButtons.set(tab, b);
      const panel = h('section', { class: 'jp-train-tabpanel', 'data-panel': tab, role: 'tabpanel' });
      panel.hidden = true;
      this._panels.set(tab, panel);
    }

    this._logs = new RunLogs(this._panels.get('logs')!, {
      isShown: () => this._tab === 'logs',
      download: path => this.download(path)
    });
    this._metrics = new RunMetrics(this._panels.get('metrics')!, {
      api: this.ctx.api,
      runId,
      isShown: () => this._tab === 'metrics',
      onUpdate: () => this._renderHeader()
    });

    this._outputs = h('div', { class: 'jp-train-outputs', testid: 'jp-train-outputs' });
    this._panels.get('outputs')!.append(this._outputs);

    const body = h('div', { class: 'jp-train-runview-body' }, ...Array.from(this._panels.values()));
    this.node.append(this._header, this._actions, nav, body);
    this.showTab('overview');
  }

  get run(): IRun | null {
    return this._run;
  }

  showTab(tab: RunTab): void {
    this._tab = tab;
    for (const [t, panel] of this._panels) {
      panel.hidden = t !== tab;
      this._tabButtons.get(t)!.setAttribute('aria-selected', String(t === tab));
      this._tabButtons.get(t)!.classList.toggle('jp-mod-current', t === tab);
    }
    this.node.dataset.tab = tab;
    if (tab === 'metrics') {
      this._metrics.render();
    } else if (tab === 'logs') {
      this._logs.render(true);
    } else if (tab === 'outputs') {
      void this._loadOutputs();
    }
  }

  async cancel(): Promise<void> {
    try {
      this._setRun(await this.ctx.api.cancel(this.runId));
    } catch (err) {
      notifyError(`Could not cancel ${this.runId}`, err);
    }
  }

  async resubmit(): Promise<void> {
    try {
      const run = await this.ctx.api.resubmit(this.runId);
      notifySuccess(`Resubmitted as ${run.id}`);
      this.ctx.openRun(run.id);
    } catch (err) {
      notifyError(`Could not resubmit ${this.runId}`, err);
    }
  }

  async registerModel(path?: string): Promise<void> {
    try {
      const outputs = (await this.ctx.api.files(this.runId)).filter(f => f.startsWith('outputs/'));
      if (!path) {
        const choices = Array.from(new Set(['outputs', ...outputs]));
        if (outputs.length === 0) {
          notifyError(`Nothing to register from ${this.runId}`, 'the run has no files under outputs/ yet');
          return;
        }
        const picked = await InputDialog.getItem({
          title: 'Register a model from',
          items: choices,
          current: choices.find(c => /\.(pt|pth|onnx|pkl|bin|safetensors)$/.test(c)) ?? choices[0]
        });
        if (!picked.button.accept || !picked.value) {
          return;
        }
        path = picked.value;
      }
      const named = await InputDialog.getText({
        title: `Model name for ${path}`,
        text: (this._run?.experiment ?? 'model').replace(/[^A-Za-z0-9_.-]/g, '-')
      });
      if (!named.button.accept || !named.value) {
        return;
      }
      const model = await this.ctx.api.registerModel({ name: named.value, run_id: this.runId, path });
      notifySuccess(`Registered ${model.name} version ${model.version}`);
      void this.ctx.commands.execute('jupyter-train:refresh');
    } catch (err) {
      notifyError('Could not register the model', err);
    }
  }

  copyCode(): void {
    if (!this._run) {
      return;
    }
    Clipboard.copyToSystem(sdkCode(this._run, this._info?.workspace, this._cellText ?? undefined));
    notifySuccess('Copied the SDK code that reproduces this run');
  }

  /** Download the log file showing in the Logs tab. */
  downloadLog(): Promise<void> {
    return this._logs.download();
  }

  async download(name: string): Promise<void> {
    try {
      const resp = await this.ctx.api.fetch('GET', ['runs', this.runId, 'files', name]);
      saveBlob(await resp.blob(), `${this.runId}-${name.split('/').pop()}`);
    } catch (err) {
      notifyError(`Could not download ${name}`, err);
    }
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._closed = true;
    this._socket?.close();
    window.clearInterval(this._ticker);
    this._metrics.dispose();
    super.dispose();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    if (!this._started) {
      this._started = true;
      void this._start();
    }
  }

  private async _start(): Promise<void> {
    try {
      this._info = await this.ctx.info().catch(() => null);
      this._setRun(await this.ctx.api.run(this.runId));
      void this._loadCell();
      for (const log of await this.ctx.api.logs(this.runId)) {
        this._logs.buffer(log.name);
      }
      this._logs.updateSelect();
    } catch (err) {
      this._header.replaceChildren(h('div', { class: 'jp-train-message jp-train-message-error', role: 'alert' },
        err instanceof Error ? err.message : String(err)));
      notifyError(`Could not open run ${this.runId}`, err);
      return;
    }
    this._ticker = window.setInterval(() => {
      if (this._run && !isTerminal(this._run.status) && this.isVisible) {
        this._renderHeader();
      }
    }, 1000);
    await this._metrics.load();
    this._connect();
  }

  /** A %%train run's cell, from its snapshot, so the SDK code carries the cell's text. */
  private async _loadCell(): Promise<void> {
    const run = this._run;
    const extra = run?.properties?.extra_files;
    if (!run || !Array.isArray(extra) || !extra.includes(run.script ?? '')) {
      return;
    }
    try {
      this._cellText = await this.ctx.api.snapshotText(run.id, run.script as string);
      this._renderOverview();
    } catch (err) {
      console.warn(`jupyter-train: the cell of ${run.id}`, err); // the code then reads the file
    }
  }

  private _connect(): void {
    if (this._closed) {
      return;
    }
    const logs = this._logs.offsets;
    const query: Record<string, string | number> = { cursor: this._metrics.history.cursor };
    if (logs) {
      query.logs = logs;
    }
    const socket = new this.ctx.api.settings.WebSocket(this.ctx.api.wsUrl(`runs/${encodeURIComponent(this.runId)}/stream`, query));
    this._socket = socket;
    let ended = false;
    socket.onmessage = (event: MessageEvent) => {
      const msg = JSON.parse(String(event.data));
      if (msg.type === 'status') {
        this._setRun(msg.run);
      } else if (msg.type === 'log') {
        this._logs.onLog(msg.name, msg.text, msg.next_offset);
      } else if (msg.type === 'metrics') {
        this._metrics.add(msg.items ?? [], msg.cursor);
      } else if (msg.type === 'end') {
        ended = true;
        void this.ctx.api.run(this.runId).then(run => this._setRun(run)).catch(() => undefined);
      }
    };
    socket.onclose = () => {
      this._socket = null;
      this.node.dataset.live = 'false';
      if (!ended && !this._closed) {
        window.setTimeout(() => this._connect(), 1500);
      }
    };
    socket.onopen = () => {
      this.node.dataset.live = 'true';
    };
  }

  private async _loadOutputs(): Promise<void> {
    let files: string[];
    let sizes: Record<string, number> = {};
    try {
      ({ files, sizes } = await this.ctx.api.fileListing(this.runId));
    } catch (err) {
      this._outputs.replaceChildren(h('p', { class: 'jp-train-message jp-train-message-error' }, String((err as Error).message)));
      return;
    }
    const outputs = files.filter(f => f.startsWith('outputs/'));
    const base = this._info?.contents_path ? `${this._info.contents_path}/runs/${this.runId}` : null;
    const rows = outputs.flatMap(f => {
      const kind = previewKind(f, sizes[f]);
      const previewRow = h('tr', { class: 'jp-train-output-preview', hidden: true }, h('td', { colspan: 3 }));
      const toggle = async () => {
        if (previewRow.hidden && !previewRow.dataset.loaded) {
          previewRow.dataset.loaded = '1';
          try {
            previewRow.firstElementChild!.replaceChildren(await renderPreview(this.ctx.api, this.runId, f, sizes[f]));
          } catch (err) {
            delete previewRow.dataset.loaded;
            notifyError(`Could not preview ${f}`, err);
            return;
          }
        }
        previewRow.hidden = !previewRow.hidden;
      };
      return [
        h('tr', { class: 'jp-train-output', 'data-file': f },
          h('td', { class: 'jp-train-output-name' }, f.slice('outputs/'.length)),
          h('td', { class: 'jp-train-output-size' }, formatBytes(sizes[f])),
          h('td', {},
            kind !== 'none' ? button('Preview', () => void toggle(), { testid: 'jp-train-output-preview' }) : null,
            button('Download', () => void this.download(f), { testid: 'jp-train-output-download' }),
            button('Register as model', () => void this.registerModel(f)),
            base ? button('Open', () => void this.ctx.commands.execute('docmanager:open', { path: `${base}/${f}` })) : null)),
        previewRow
      ];
    });
    const browse = base
      ? button('Show in file browser', () => void this.ctx.commands.execute('filebrowser:go-to-path', { path: `${base}/outputs/` }), { testid: 'jp-train-show-outputs' })
      : h('span', { class: 'jp-train-hint', title: 'The workspace is outside the Jupyter root folder (or hidden), so the file browser cannot show it; download the files instead.' },
          `Files live in ${this._run?.run_dir ?? 'the run folder'}/outputs`);
    this._outputs.replaceChildren(
      h('div', { class: 'jp-train-log-toolbar' }, browse, button('Refresh', () => void this._loadOutputs())),
      outputs.length
        ? h('table', { class: 'jp-train-kv' }, ...rows)
        : h('p', { class: 'jp-train-message' }, isTerminal(this._run?.status ?? '') ? 'This run wrote nothing under outputs/.' : 'Files written under outputs/ appear here when the run ends.'),
      h('h3', {}, 'Logs'),
      h('ul', { class: 'jp-train-files' }, ...files.filter(f => f.startsWith('logs/')).map(f =>
        h('li', {}, h('a', { href: '#', onclick: (ev: Event) => { ev.preventDefault(); void this.download(f); } }, f))))
    );
  }

  private _setRun(run: IRun): void {
    const was = this._run?.status;
    this._run = run;
    this.node.dataset.status = run.status;
    this.title.label = run.tags?.display_name || run.id;
    this._cancel.disabled = isTerminal(run.status);
    this._renderHeader();
    this._renderOverview();
    if (was !== run.status && isTerminal(run.status) && this._tab === 'outputs') {
      void this._loadOutputs();
    }
  }

  private _renderHeader(): void {
    const run = this._run;
    if (!run) {
      return;
    }
    const now = Date.now() / 1000;
    const primary = run.primary_metric;
    this._header.replaceChildren();
    append(
      this._header,
      h('h2', { class: 'jp-train-runview-title' }, run.tags?.display_name || run.id),
      statusBadge(run.status),
      h('span', { class: 'jp-train-meta' }, `${run.experiment} · ${run.compute_target ?? ''} · ${formatDuration(runDuration(run, now))}`),
      primary ? h('span', { class: 'jp-train-meta', testid: 'jp-train-primary-metric' }, `${primary.name} ${formatValue(this._metrics.history.latest().find(m => m.name === primary.name)?.value ?? primary.value)}`) : null,
      run.queue_position ? h('span', { class: 'jp-train-meta' }, `#${run.queue_position} in the queue`) : null,
      run.error ? h('div', { class: 'jp-train-message jp-train-message-error', role: 'alert' }, run.error) : null
    );
  }

  private _renderOverview(): void {
    const run = this._run;
    if (!run) {
      return;
    }
    const now = Date.now() / 1000;
    const props = run.properties ?? {};
    const env = props.environment as { name: string; version?: number } | undefined;
    const dist = props.distributed as { kind: string; nodes: number; procs_per_node: number; backend?: string } | undefined;
    const kv: Array<[string, string | Node]> = [
      ['Run', run.id],
      ['Experiment', run.experiment],
      ['Status', statusBadge(run.status)],
      ['Script', run.script ?? ''],
      ['Arguments', (run.arguments ?? []).join(' ') || '—'],
      ['Compute', run.compute_target ?? ''],
      ['Environment', env ? `${env.name}${env.version ? ` v${env.version}` : ''}` : 'the server’s Python'],
      ['Distributed', dist ? `${dist.kind} · ${dist.nodes} node(s) × ${dist.procs_per_node} process(es)${dist.backend ? ` · ${dist.backend}` : ''}` : 'no (one process)'],
      ['Source', props.source_directory ?? (props.extra_files ? 'a notebook cell' : '')],
      ['Datasets', datasetInputsText(props.input_datasets as IDatasetInput[] | undefined)],
      ['Snapshot', run.snapshot_id ? `${run.snapshot_id.slice(0, 12)} · ${props.snapshot_files ?? '?'} files · ${formatBytes(props.snapshot_bytes)}` : ''],
      ['Display name', run.tags?.display_name || '—'],
      ['Tags', userTags(run).map(([k, v]) => (v ? `${k}=${v}` : k)).join(', ') || '—'],
      ['Created', formatTime(run.created_at)],
      ['Started', formatTime(run.started_at)],
      ['Ended', formatTime(run.ended_at)],
      ['Duration', formatDuration(runDuration(run, now))],
      ['Run folder', run.run_dir ?? '']
    ];
    const params = runParameters(run);
    const spans = phaseSpans(run, now);
    const total = spans.reduce((s, p) => s + p.seconds, 0) || 1;
    const panel = this._panels.get('overview')!;
    panel.replaceChildren(
      h('table', { class: 'jp-train-kv', testid: 'jp-train-overview' },
        ...kv.map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', {}, v)))),
      h('h3', {}, 'Parameters'),
      params.length
        ? h('table', { class: 'jp-train-kv jp-train-params', testid: 'jp-train-params' },
          ...params.map(p => h('tr', { 'data-param': p.name }, h('th', {}, p.name), h('td', {}, formatParam(p.value)),
            h('td', { class: 'jp-train-meta' }, PARAM_SOURCES[p.source]))))
        : h('p', { class: 'jp-train-message' }, 'No parameters: the script got no --name value arguments and logged none.'),
      h('h3', {}, 'Time per phase'),
      h('table', { class: 'jp-train-kv jp-train-phases', testid: 'jp-train-phases' },
        ...spans.map(p => h('tr', { 'data-phase': p.state },
          h('th', {}, p.state),
          h('td', {}, formatDuration(p.seconds)),
          h('td', { class: 'jp-train-phase-bar-cell' }, h('span', { class: 'jp-train-phase-bar', style: `width:${Math.max(1, (100 * p.seconds) / total).toFixed(1)}%` })),
          h('td', { class: 'jp-train-phase-msg' }, p.message ?? '')))),
      h('h3', {}, 'SDK code'),
      h('pre', { class: 'jp-train-code', testid: 'jp-train-sdk-code' }, sdkCode(run, this._info?.workspace, this._cellText ?? undefined))
    );
  }

  private _run: IRun | null = null;
  private _info: IInfo | null = null;
  private _cellText: string | null = null;
  private _tab: RunTab = 'overview';
  private _started = false;
  private _closed = false;
  private _socket: WebSocket | null = null;
  private _ticker = 0;
  private _logs: RunLogs;
  private _metrics: RunMetrics;
  private _header: HTMLDivElement;
  private _actions: HTMLDivElement;
  private _cancel: HTMLButtonElement;
  private _resubmit: HTMLButtonElement;
  private _register: HTMLButtonElement;
  private _tabButtons = new Map<RunTab, HTMLButtonElement>();
  private _panels = new Map<RunTab, HTMLElement>();
  private _outputs: HTMLDivElement;
}
