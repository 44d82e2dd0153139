import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { Clipboard, ICommandPalette, InputDialog, WidgetTracker } from '@jupyterlab/apputils';
import { ServerConnection } from '@jupyterlab/services';

import { IInfo, TrainApi } from './api';
import { CompareView } from './compare';
import { EventsFeed, ITrainContext, notifyError, notifySuccess } from './context';
import { RunsStore } from './runs';
import { RunTab, RunView } from './runview';
import { sdkCode } from './sdk';
import { SIDEBAR_ID, TrainSidebar } from './sidebar';
import { isSweep } from './sweeps';
import { SweepView } from './sweepview';

export namespace CommandIDs {
  export const showPanel = 'jupyter-train:show-panel';
  export const refresh = 'jupyter-train:refresh';
  export const openRun = 'jupyter-train:open-run';
  export const cancelRun = 'jupyter-train:cancel-run';
  export const resubmitRun = 'jupyter-train:resubmit-run';
  export const registerModel = 'jupyter-train:register-model';
  export const copyCode = 'jupyter-train:copy-sdk-code';
  export const compare = 'jupyter-train:compare-runs';
}

const CATEGORY = 'Training';

/** Run rows of the sidebar: the selector of their context menu. */
const ROW_SELECTOR = '.jp-train-run-row';

type CommandOptions = Parameters<JupyterFrontEnd['commands']['addCommand']>[1];
type CommandArgs = Parameters<CommandOptions['execute']>[0];

/** Where a command sits in a run row's context menu (left out: not there). */
interface IMenuRank {
  menuRank?: number;
}

/** A command on one run: what it does to the run, and how a failure is announced. */
interface IRunCommand extends IMenuRank {
  label: string;
  caption?: string;
  act: (id: string, args: CommandArgs) => Promise<unknown>;
  failure?: (id: string) => string;
}

/**
 * The jupyter-train panel: a left sidebar of runs, compute, models and environments, run views
 * and comparisons in the main area, and commands in the palette.
 */
const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-train:sidebar',
  description: 'Training runs, compute, models and environments of the jupyter-train workspace.',
  autoStart: true,
  optional: [ILayoutRestorer, ICommandPalette],
  activate: (app: JupyterFrontEnd, restorer: ILayoutRestorer | null, palette: ICommandPalette | null) => {
    const settings: ServerConnection.ISettings =
      app.serviceManager?.serverSettings ?? ServerConnection.makeSettings();
    const api = new TrainApi(settings);
    const store = new RunsStore(200);
    const feed = new EventsFeed(api, store);
    const runViews = new WidgetTracker<RunView>({ namespace: 'jupyter-train-run' });
    const sweepViews = new WidgetTracker<SweepView>({ namespace: 'jupyter-train-sweep' });
    let info: Promise<IInfo> | null = null;

    const ctx: ITrainContext = {
      api,
      store,
      feed,
      commands: app.commands,
      info: () => {
        if (!info) {
          info = api.info().catch(err => {
            info = null;
            throw err;
          });
        }
        return info;
      },
      openRun: (id: string, tab?: string) => void app.commands.execute(CommandIDs.openRun, { id, tab: tab ?? '' }),
      compare: (ids: string[]) => void app.commands.execute(CommandIDs.compare, { ids })
    };

    const sidebar = new TrainSidebar(ctx);
    app.shell.add(sidebar, 'left', { rank: 850 });
    restorer?.add(sidebar, SIDEBAR_ID);
    feed.start();

    /** The run a command acts on: its argument, the right-clicked row, or the current view. */
    const targetRun = (args: any): string | undefined => {
      if (typeof args?.id === 'string' && args.id) {
        return args.id;
      }
      const hit = app.contextMenuHitTest(node => !!node.dataset?.runId);
      if (hit?.dataset.runId) {
        return hit.dataset.runId;
      }
      const current = app.shell.currentWidget;
      if (current instanceof RunView || current instanceof SweepView) {
        return current.runId;
      }
      return runViews.currentWidget?.runId;
    };

    /** Register a command and list it in the palette (and, with a rank, in a run row's menu). */
    const addCommand = (id: string, { menuRank, ...options }: CommandOptions & IMenuRank): void => {
      app.commands.addCommand(id, options);
      palette?.addItem({ command: id, category: CATEGORY });
      if (menuRank !== undefined) {
        app.contextMenu.addItem({ command: id, selector: ROW_SELECTOR, rank: menuRank });
      }
    };

    /**
     * A command on one run (see targetRun), enabled while there is one. ``failure`` names what
     * went wrong in the notification shown when ``act`` throws; without it the error propagates.
     */
    const addRunCommand = (id: string, { act, failure, ...options }: IRunCommand): void =>
      addCommand(id, {
        ...options,
        isEnabled: () => !!targetRun({}),
        execute: async args => {
          const runId = targetRun(args);
          if (!runId) {
            return;
          }
          if (!failure) {
            await act(runId, args);
            return;
          }
          try {
            await act(runId, args);
          } catch (err) {
            notifyError(failure(runId), err);
          }
        }
      });

    addCommand(CommandIDs.showPanel, {
      label: 'Show Training Panel',
      caption: 'Runs, compute, models and environments of the workspace',
      execute: () => app.shell.activateById(SIDEBAR_ID)
    });

    addCommand(CommandIDs.refresh, {
      label: 'Refresh Training Panel',
      execute: () => sidebar.refresh()
    });

    /** A sweep's view (its children, charts), opened or brought to the front. */
    const openSweep = (id: string): SweepView => {
      let view = sweepViews.find(w => w.runId === id);
      if (!view) {
        view = new SweepView(id, ctx);
        void sweepViews.add(view);
        app.shell.add(view, 'main');
      }
      app.shell.activateById(view.id);
      return view;
    };

    addCommand(CommandIDs.openRun, {
      label: args => (args.id ? `Open Run ${args.id}` : 'Open Run…'),
      caption: 'Show a run: overview, logs, metrics, outputs (a sweep: its children and charts; view "run" for its own run view)',
      execute: async args => {
        let id: string | undefined =
          typeof args.id === 'string' && args.id
            ? args.id
            : app.contextMenuHitTest(node => !!node.dataset?.runId)?.dataset.runId;
        if (!id) {
          const ids = store.runs.map(r => r.id);
          if (!ids.length) {
            notifyError('Open run', 'there are no runs in this workspace yet');
            return;
          }
          const picked = await InputDialog.getItem({ title: 'Open run', items: ids, current: ids[0] });
          if (!picked.button.accept || !picked.value) {
            return;
          }
          id = picked.value;
        }
        let view = runViews.find(w => w.runId === id);
        if (args.view !== 'run') {
          const run = store.get(id) ?? (view ? undefined : await api.run(id).catch(() => undefined));
          if (isSweep(run) || sweepViews.find(w => w.runId === id)) {
            return openSweep(id);
          }
        }
        if (!view) {
          view = new RunView(id, ctx);
          void runViews.add(view);
          app.shell.add(view, 'main');
        }
        if (typeof args.tab === 'string' && args.tab) {
          view.showTab(args.tab as RunTab);
        }
        app.shell.activateById(view.id);
        return view;
      },
      menuRank: 0
    });

    addRunCommand(CommandIDs.cancelRun, {
      label: 'Cancel Run',
      caption: 'Stop a run and its whole process tree',
      act: async id => store.upsert(await api.cancel(id)),
      failure: id => `Could not cancel ${id}`,
      menuRank: 1
    });

    addRunCommand(CommandIDs.resubmitRun, {
      label: 'Resubmit Run',
      caption: 'Run the same spec again (same snapshot, arguments, compute, environment)',
      act: async id => {
        const run = await api.resubmit(id);
        store.upsert(run);
        notifySuccess(`Resubmitted ${id} as ${run.id}`);
        ctx.openRun(run.id);
      },
      failure: id => `Could not resubmit ${id}`,
      menuRank: 2
    });

    addRunCommand(CommandIDs.registerModel, {
      label: 'Register Model from Run…',
      act: async (id, args) => {
        const view = await app.commands.execute(CommandIDs.openRun, { id, tab: 'outputs', view: 'run' });
        if (view instanceof RunView) {
          await view.registerModel(typeof args.path === 'string' ? args.path : undefined);
        }
      },
      menuRank: 4
    });

    addRunCommand(CommandIDs.copyCode, {
      label: 'Copy SDK Code of Run',
      caption: 'Python (kernel_lib) that submits the same run again',
      act: async id => {
        const run = store.get(id) ?? (await api.run(id));
        const workspace = (await ctx.info().catch(() => null))?.workspace;
        Clipboard.copyToSystem(sdkCode(run, workspace));
        notifySuccess(`Copied the SDK code of ${id}`);
      },
      failure: id => `Could not copy the code of ${id}`,
      menuRank: 3
    });

    addCommand(CommandIDs.compare, {
      label: 'Compare Selected Runs',
      caption: 'Metrics of the runs ticked in the panel, on one chart per metric',
      isEnabled: args => Array.isArray(args.ids) || sidebar.selected.length >= 2,
      execute: args => {
        const ids = (Array.isArray(args.ids) ? (args.ids as string[]) : sidebar.selected).filter(Boolean);
        if (ids.length < 2) {
          notifyError('Compare runs', 'tick two or more runs in the Training panel first');
          return;
        }
        const view = new CompareView(ids, ctx);
        app.shell.add(view, 'main');
        app.shell.activateById(view.id);
        return view;
      },
      menuRank: 10
    });

    if (restorer) {
      void restorer.restore(runViews, {
        command: CommandIDs.openRun,
        args: widget => ({ id: widget.runId, view: 'run' }),
        name: widget => widget.runId
      });
      void restorer.restore(sweepViews, {
        command: CommandIDs.openRun,
        args: widget => ({ id: widget.runId }),
        name: widget => widget.runId
      });
    }
  }
};

export default plugin;
export * from './api';
export * from './contract';
export * from './format';
export * from './logs';
export * from './metrics';
export * from './runs';
export * from './sdk';
export * from './sweeps';
export * from './parallel';
export { TrainSidebar } from './sidebar';
export { SweepView } from './sweepview';
export { RunView } from './runview';
export { CompareView } from './compare';
