/**
 * The sidebar's Compute, Models, Datasets and Environments sections: plain DOM drawn from the
 * REST answers (GET /computes, /models, /datasets, /environments).
 */

import { ICompute, IEnvironment, IModel, IRayStatus } from './api';
import {
  groupDatasets,
  IDataset,
  REGISTER_DATASET_CODE,
  runsShown,
  usageText,
  versionSource,
  versionSummary
} from './datasets';
import { h } from './dom';
import { formatResources, formatTime, raySummary } from './format';

/** The Compute section: each target, its nodes by state, a Ray cluster's nodes, its queue. */
export function renderComputes(box: HTMLElement, computes: ICompute[], openRun: (id: string) => void): void {
  box.replaceChildren(
    ...computes.map(c => {
      const counts = c.node_counts ?? {};
      const shape = c.kind === 'docker'
        ? `${c.engine === 'ready' ? `${c.containers ?? 0} containers running` : 'engine unreachable'} · up to ${c.max_nodes ?? c.nodes} nodes`
        : c.kind === 'cluster'
          ? `${c.vm_size ?? ''} · ${c.min_nodes ?? 0}–${c.max_nodes ?? c.nodes} nodes`
          : c.kind === 'ray'
            ? `${c.vm_size ?? ''} per node · up to ${c.max_nodes ?? c.nodes} nodes`
            : `${c.cpus ?? '?'} CPUs${c.gpus ? ` · ${c.gpus} GPUs` : ''}`;
      return h('div', { class: 'jp-train-compute', 'data-compute': c.name, 'data-state': c.state },
        h('div', { class: 'jp-train-compute-head', title: c.base_url ?? c.address ?? '' },
          h('span', { class: 'jp-train-compute-name' }, c.name),
          h('span', { class: 'jp-train-compute-kind' }, `${c.kind} · ${shape}`)),
        h('div', { class: 'jp-train-nodes' },
          nodeCount('idle', counts.idle), nodeCount('busy', counts.busy), nodeCount('preparing', counts.preparing),
          counts.unusable ? nodeCount('unusable', counts.unusable) : null),
        c.ray ? rayCluster(c.address ?? '', c.ray) : null,
        c.queue.length
          ? h('div', { class: 'jp-train-queue', 'data-queued': c.queue.length },
              `Queued (${c.queue.length}): `,
              ...c.queue.map((id, i) => h('a', { href: '#', class: 'jp-train-queued-run', onclick: (ev: Event) => { ev.preventDefault(); openRun(id); } }, `${i ? ', ' : ''}${id}`)))
          : null);
    })
  );
}

/** A Ray target's cluster: a summary line, then each Ray node with its resources. */
function rayCluster(address: string, ray: IRayStatus): HTMLElement {
  return h('div', { class: 'jp-train-ray', 'data-ray-state': ray.state, title: `Ray cluster at ${address}` },
    h('div', { class: 'jp-train-ray-summary' }, raySummary(ray)),
    ...ray.nodes.map(n =>
      h('div', { class: 'jp-train-ray-node', 'data-node-id': n.node_id, 'data-state': n.state,
                 title: `Ray node ${n.node_id}` },
        h('span', { class: `jp-train-ray-node-state jp-train-node-${n.state}` }, n.state),
        ` ${n.address} · ${n.node_id.slice(0, 8)} · ${formatResources(n.resources, n.used)}`)));
}

/** The Models section: each model's versions, newest first, with the run each came from. */
export function renderModels(box: HTMLElement, models: IModel[], openRun: (id: string) => void): void {
  if (!models.length) {
    box.replaceChildren(h('p', { class: 'jp-train-empty' }, 'No models yet. Register one from a run’s outputs.'));
    return;
  }
  const byName = new Map<string, IModel[]>();
  for (const m of models) {
    byName.set(m.name, [...(byName.get(m.name) ?? []), m]);
  }
  box.replaceChildren(
    ...Array.from(byName.entries()).sort().map(([name, versions]) =>
      h('div', { class: 'jp-train-model', 'data-model': name },
        h('div', { class: 'jp-train-model-name' }, name),
        h('ul', {}, ...versions.sort((a, b) => b.version - a.version).map(v =>
          h('li', { 'data-version': v.version },
            `v${v.version}${v.framework ? ` · ${v.framework}` : ''} `,
            v.run_id
              ? h('a', { href: '#', title: `from ${v.source_path ?? ''} of ${v.run_id}`, onclick: (ev: Event) => { ev.preventDefault(); openRun(v.run_id!); } }, `from ${v.run_id}`)
              : h('span', {}, v.source_path ?? v.path),
            h('span', { class: 'jp-train-run-time' }, ` · ${formatTime(v.created_at)}`))))))
  );
}

/**
 * The Datasets section: each dataset's versions, newest first, with their files, size,
 * datastore and time, and links to the runs that used each.
 */
export function renderDatasets(box: HTMLElement, datasets: IDataset[], openRun: (id: string) => void): void {
  if (!datasets.length) {
    box.replaceChildren(h('p', { class: 'jp-train-empty' },
      'No datasets yet. Register one from a notebook: ',
      h('code', { class: 'jp-train-dataset-code' }, REGISTER_DATASET_CODE)));
    return;
  }
  box.replaceChildren(
    ...groupDatasets(datasets).map(g =>
      h('div', { class: 'jp-train-dataset', 'data-dataset': g.name },
        h('div', { class: 'jp-train-dataset-head' },
          h('span', { class: 'jp-train-dataset-name' }, g.name),
          h('span', { class: 'jp-train-dataset-kind' },
            `${g.versions[0].kind} · ${g.versions.length} version${g.versions.length === 1 ? '' : 's'}`)),
        h('ul', {}, ...g.versions.map(v => datasetVersion(v, openRun)))))
  );
}

function datasetVersion(v: IDataset, openRun: (id: string) => void): HTMLElement {
  const tags = Object.entries(v.tags ?? {}).map(([k, val]) => `${k}=${val}`).join(' ');
  const { shown, more } = runsShown(v.runs);
  return h('li', {
    class: 'jp-train-dataset-version',
    'data-version': v.version,
    'data-files': v.files,
    'data-size': v.size,
    'data-runs': v.runs.length,
    title: [`${v.name}:${v.version}`, v.description, tags && `tags ${tags}`, `checksum ${v.checksum}`].filter(Boolean).join('\n')
  },
  h('div', { class: 'jp-train-dataset-line' },
    h('span', { class: 'jp-train-dataset-summary' }, versionSummary(v)),
    h('span', { class: 'jp-train-run-time', title: new Date(v.created_at * 1000).toLocaleString() }, formatTime(v.created_at))),
  h('div', { class: 'jp-train-dataset-source' }, versionSource(v)),
  v.description ? h('div', { class: 'jp-train-dataset-description' }, v.description) : null,
  h('div', { class: 'jp-train-dataset-runs', testid: 'jp-train-dataset-runs' },
    usageText(v.runs),
    ...shown.flatMap((id, i) => [i ? ', ' : ': ', runLink(id, openRun)]),
    more ? ` and ${more} earlier` : null));
}

function runLink(id: string, openRun: (id: string) => void): HTMLElement {
  return h('a', {
    href: '#',
    class: 'jp-train-dataset-run',
    'data-run-id': id,
    title: `Open ${id}`,
    onclick: (ev: Event) => { ev.preventDefault(); openRun(id); }
  }, id);
}

/** The Environments section: each environment and its build state. */
export function renderEnvironments(box: HTMLElement, envs: IEnvironment[]): void {
  box.replaceChildren(
    ...envs.map(e =>
      h('div', { class: 'jp-train-env', 'data-env': e.name },
        h('span', { class: 'jp-train-env-name' }, `${e.name}${e.version ? ` v${e.version}` : ''}`),
        h('span', { class: `jp-train-env-state jp-train-env-${(e.build_state ?? 'unknown').replace(/\s+/g, '-')}` }, e.build_state ?? '')))
  );
}

function nodeCount(kind: string, n: number | undefined): HTMLElement {
  return h('span', { class: `jp-train-node-count jp-train-node-${kind}`, 'data-kind': kind, 'data-count': n ?? 0 }, `${n ?? 0} ${kind}`);
}
