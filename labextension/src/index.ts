import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';

import { ServerConnection } from '@jupyterlab/services';

import { RunsSidebar, SIDEBAR_ID } from './sidebar';

/**
 * Left-sidebar panel listing recent jupyter-train runs.
 */
const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-train:sidebar',
  description: 'Sidebar listing recent jupyter-train training runs.',
  autoStart: true,
  optional: [ILayoutRestorer],
  activate: (app: JupyterFrontEnd, restorer: ILayoutRestorer | null) => {
    const serverSettings: ServerConnection.ISettings =
      app.serviceManager?.serverSettings ?? ServerConnection.makeSettings();
    const sidebar = new RunsSidebar({ serverSettings });
    app.shell.add(sidebar, 'left', { rank: 850 });
    if (restorer) {
      restorer.add(sidebar, SIDEBAR_ID);
    }
  }
};

export default plugin;
export * from './api';
export { RunsSidebar } from './sidebar';
