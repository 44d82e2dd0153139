/**
 * Registered datasets as the sidebar's Datasets section shows them: the versions of each
 * dataset together, newest first, and the lines about a version (its files and size, where
 * they come from, the runs that used it). Pure: no JupyterLab or DOM dependency, so jest tests
 * it directly.
 */

import { formatBytes } from './format';

/** A file or folder pattern in a datastore that a version was registered from. */
export interface IDatasetPath {
  datastore?: string;
  path: string;
}

/** GET /datasets: one entry per version (schema Dataset in jupyter_ext/openapi.yaml). */
export interface IDataset {
  name: string;
  version: number;
  kind: 'file' | 'tabular';
  paths: IDatasetPath[];
  /** The folder in the datastore that the version's file paths are relative to. */
  base?: string;
  datastore: string;
  description?: string | null;
  tags?: Record<string, string>;
  tabular?: { separator?: string; header?: boolean } | null;
  checksum: string;
  /** How many files the version holds. */
  files: number;
  /** Their total size in bytes. */
  size: number;
  created_at: number;
  /** Runs that used this version, oldest first. */
  runs: string[];
}

/** A dataset's versions, newest first. */
export interface IDatasetGroup {
  name: string;
  versions: IDataset[];
}

/** What the empty section suggests: the SDK call that registers a dataset. */
export const REGISTER_DATASET_CODE =
  'Dataset.File.from_files(path=(ws.get_default_datastore(), "fowl/**")).register(ws, "fowl")';

/** The versions of each dataset together: datasets by name, each one's versions newest first. */
export function groupDatasets(datasets: ReadonlyArray<IDataset>): IDatasetGroup[] {
  const byName = new Map<string, IDataset[]>();
  for (const d of datasets) {
    const versions = byName.get(d.name);
    if (versions) {
      versions.push(d);
    } else {
      byName.set(d.name, [d]);
    }
  }
  return Array.from(byName.entries())
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, versions]) => ({ name, versions: versions.sort((a, b) => b.version - a.version) }));
}

/** "1 file" / "12 files". */
export function fileCount(n: number): string {
  return `${n} file${n === 1 ? '' : 's'}`;
}

/** A version's contents in one line: "v2 · 3 files · 1.5 KB" (", tabular" for a table). */
export function versionSummary(v: IDataset): string {
  return `v${v.version} · ${fileCount(v.files)} · ${formatBytes(v.size)}${v.kind === 'tabular' ? ' · tabular' : ''}`;
}

/**
 * Where a version's files come from: "workspaceblobstore: fowl/**" (the patterns of each
 * datastore together, the datastore of the version where a path names none).
 */
export function versionSource(v: IDataset): string {
  const byStore = new Map<string, string[]>();
  for (const p of v.paths.length ? v.paths : [{ path: v.base ?? '' }]) {
    const store = p.datastore || v.datastore;
    byStore.set(store, [...(byStore.get(store) ?? []), p.path]);
  }
  return Array.from(byStore.entries())
    .map(([store, paths]) => `${store}: ${paths.filter(Boolean).join(', ') || '/'}`)
    .join(' · ');
}

/** "not used by a run yet", "used by 1 run", "used by 4 runs". */
export function usageText(runs: ReadonlyArray<string>): string {
  if (!runs.length) {
    return 'not used by a run yet';
  }
  return `used by ${runs.length} run${runs.length === 1 ? '' : 's'}`;
}

/**
 * The runs a version's row links to: the latest ``max``, newest first, and how many older
 * ones are left out.
 */
export function runsShown(runs: ReadonlyArray<string>, max = 5): { shown: string[]; more: number } {
  const shown = runs.slice(-max).reverse();
  return { shown, more: runs.length - shown.length };
}
