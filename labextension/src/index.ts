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
import { RunsStore, sdkCode } from './model';
import { RunTab, RunView } from './runview';
import { SIDEBAR_ID, TrainSidebar } from './sidebar';

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
      return current instanceof RunView ? current.runId : runViews.currentWidget?.runId;
    };

    app.commands.addCommand(CommandIDs.showPanel, {
      label: 'Show Training Panel',
      caption: 'Runs, compute, models and environments of the workspace',
      execute: () => app.shell.activateById(SIDEBAR_ID)
    });

    app.commands.addCommand(CommandIDs.refresh, {
      label: 'Refresh Training Panel',
      execute: () => sidebar.refresh()
    });

    app.commands.addCommand(CommandIDs.openRun, {
      label: args => (args.id ? `Open Run ${args.id}` : 'Open Run…'),
      caption: 'Show a run: overview, logs, metrics, outputs',
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
      }
    });

    app.commands.addCommand(CommandIDs.cancelRun, {
      label: 'Cancel Run',
      caption: 'Stop a run and its whole process tree',
      isEnabled: () => !!targetRun({}),
      execute: async args => {
        const id = targetRun(args);
        if (!id) {
          return;
        }
        try {
          store.upsert(await api.cancel(id));
        } catch (err) {
          notifyError(`Could not cancel ${id}`, err);
        }
      }
    });

    app.commands.addCommand(CommandIDs.resubmitRun, {
      label: 'Resubmit Run',
      caption: 'Run the same spec again (same snapshot, arguments, compute, environment)',
      isEnabled: () => !!targetRun({}),
      execute: async args => {
        const id = targetRun(args);
        if (!id) {
          return;
        }
        try {
          const run = await api.resubmit(id);
          store.upsert(run);
          notifySuccess(`Resubmitted ${id} as ${run.id}`);
          ctx.openRun(run.id);
        } catch (err) {
          notifyError(`Could not resubmit ${id}`, err);
        }
      }
    });

    app.commands.addCommand(CommandIDs.registerModel, {
      label: 'Register Model from Run…',
      isEnabled: () => !!targetRun({}),
      execute: async args => {
        const id = targetRun(args);
        if (!id) {
          return;
        }
        const view = (await app.commands.execute(CommandIDs.openRun, { id, tab: 'outputs' })) as RunView | undefined;
        await view?.registerModel(typeof args.path === 'string' ? args.path : undefined);
      }
    });

    app.commands.addCommand(CommandIDs.copyCode, {
      label: 'Copy SDK Code of Run',
      caption: 'Python (kernel_lib) that submits the same run again',
      isEnabled: () => !!targetRun({}),
      execute: async args => {
        const id = targetRun(args);
        if (!id) {
          return;
        }
        try {
          const run = store.get(id) ?? (await api.run(id));
          const workspace = (await ctx.info().catch(() => null))?.workspace;
          Clipboard.copyToSystem(sdkCode(run, workspace));
          notifySuccess(`Copied the SDK code of ${id}`);
        } catch (err) {
          notifyError(`Could not copy the code of ${id}`, err);
        }
      }
    });

    app.commands.addCommand(CommandIDs.compare, {
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
      }
    });

    if (palette) {
      for (const command of [
        CommandIDs.showPanel,
        CommandIDs.refresh,
        CommandIDs.openRun,
        CommandIDs.cancelRun,
        CommandIDs.resubmitRun,
        CommandIDs.registerModel,
        CommandIDs.copyCode,
        CommandIDs.compare
      ]) {
        palette.addItem({ command, category: CATEGORY });
      }
    }

    const rowSelector = '.jp-train-run-row';
    [CommandIDs.openRun, CommandIDs.cancelRun, CommandIDs.resubmitRun, CommandIDs.copyCode, CommandIDs.registerModel].forEach(
      (command, i) => app.contextMenu.addItem({ command, selector: rowSelector, rank: i })
    );
    app.contextMenu.addItem({ command: CommandIDs.compare, selector: rowSelector, rank: 10 });

    if (restorer) {
      void restorer.restore(runViews, {
        command: CommandIDs.openRun,
        args: widget => ({ id: widget.runId }),
        name: widget => widget.runId
      });
    }
  }
};

export default plugin;
export * from './api';
export * from './model';
export { TrainSidebar } from './sidebar';
export { RunView } from './runview';
export { CompareView } from './compare';
