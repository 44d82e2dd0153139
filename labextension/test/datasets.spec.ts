import * as fs from 'fs';
import * as path from 'path';

import {
  fileCount,
  groupDatasets,
  IDataset,
  REGISTER_DATASET_CODE,
  runsShown,
  usageText,
  versionSource,
  versionSummary
} from '../src/datasets';

// js-yaml comes with jest (istanbul); it has no type declarations of its own here.
const yaml = require('js-yaml') as { load(text: string, opts?: object): unknown; CORE_SCHEMA: object };

const OPENAPI = path.resolve(__dirname, '../../jupyter_ext/openapi.yaml');

function makeDataset(overrides: Partial<IDataset> = {}): IDataset {
  return {
    name: 'fowl',
    version: 1,
    kind: 'file',
    paths: [{ datastore: 'workspaceblobstore', path: 'fowl/**' }],
    base: 'fowl',
    datastore: 'workspaceblobstore',
    description: null,
    tags: {},
    tabular: null,
    checksum: 'ab12',
    files: 2,
    size: 1500,
    created_at: 1000,
    runs: [],
    ...overrides
  };
}

describe('the Dataset of openapi.yaml', () => {
  const schema = (yaml.load(fs.readFileSync(OPENAPI, 'utf8'), { schema: yaml.CORE_SCHEMA }) as any)
    .components.schemas.Dataset;

  it('has no required field the panel does not know', () => {
    expect(Object.keys(makeDataset())).toEqual(expect.arrayContaining(schema.required));
  });

  it('has the kinds the panel tells apart', () => {
    expect(schema.properties.kind.enum).toEqual(['file', 'tabular']);
  });
});

describe('groupDatasets', () => {
  it('puts each dataset\'s versions together, by name, newest version first', () => {
    const groups = groupDatasets([
      makeDataset({ name: 'fowl', version: 1 }),
      makeDataset({ name: 'cats', version: 1 }),
      makeDataset({ name: 'fowl', version: 3 }),
      makeDataset({ name: 'fowl', version: 2 })
    ]);
    expect(groups.map(g => g.name)).toEqual(['cats', 'fowl']);
    expect(groups[1].versions.map(v => v.version)).toEqual([3, 2, 1]);
  });

  it('leaves the list it was given as it was', () => {
    const list = [makeDataset({ version: 1 }), makeDataset({ version: 2 })];
    groupDatasets(list);
    expect(list.map(v => v.version)).toEqual([1, 2]);
  });

  it('has no groups for no datasets', () => {
    expect(groupDatasets([])).toEqual([]);
  });
});

describe('versionSummary', () => {
  it('says the version, its files and their size', () => {
    expect(versionSummary(makeDataset())).toBe('v1 · 2 files · 1.5 KB');
    expect(versionSummary(makeDataset({ version: 4, files: 1, size: 11 }))).toBe('v4 · 1 file · 11 B');
    expect(versionSummary(makeDataset({ files: 0, size: 0 }))).toBe('v1 · 0 files · 0 B');
  });

  it('says when the version is a table', () => {
    expect(versionSummary(makeDataset({ kind: 'tabular', files: 1, size: 2_000_000 })))
      .toBe('v1 · 1 file · 2.0 MB · tabular');
  });
});

describe('fileCount', () => {
  it('counts in the singular and the plural', () => {
    expect(fileCount(1)).toBe('1 file');
    expect(fileCount(12)).toBe('12 files');
  });
});

describe('versionSource', () => {
  it('names the datastore and the patterns', () => {
    expect(versionSource(makeDataset())).toBe('workspaceblobstore: fowl/**');
  });

  it('puts the patterns of one datastore together, in the datastore of the version where a path names none', () => {
    const v = makeDataset({
      paths: [{ path: 'a/*.csv' }, { datastore: 'lake', path: 'x/**' }, { datastore: 'workspaceblobstore', path: 'b.csv' }]
    });
    expect(versionSource(v)).toBe('workspaceblobstore: a/*.csv, b.csv · lake: x/**');
  });

  it('falls back to the base folder when no path is given', () => {
    expect(versionSource(makeDataset({ paths: [], base: 'fowl' }))).toBe('workspaceblobstore: fowl');
    expect(versionSource(makeDataset({ paths: [], base: '' }))).toBe('workspaceblobstore: /');
  });
});

describe('usageText', () => {
  it('counts the runs that used a version', () => {
    expect(usageText([])).toBe('not used by a run yet');
    expect(usageText(['r1'])).toBe('used by 1 run');
    expect(usageText(['r1', 'r2', 'r3'])).toBe('used by 3 runs');
  });
});

describe('runsShown', () => {
  it('shows every run, newest first, when there are few', () => {
    expect(runsShown(['r1', 'r2'])).toEqual({ shown: ['r2', 'r1'], more: 0 });
    expect(runsShown([])).toEqual({ shown: [], more: 0 });
  });

  it('shows the latest ones and counts the earlier ones', () => {
    const runs = ['r1', 'r2', 'r3', 'r4', 'r5', 'r6', 'r7'];
    expect(runsShown(runs)).toEqual({ shown: ['r7', 'r6', 'r5', 'r4', 'r3'], more: 2 });
    expect(runsShown(runs, 2)).toEqual({ shown: ['r7', 'r6'], more: 5 });
  });
});

describe('REGISTER_DATASET_CODE', () => {
  it('is the SDK call that registers a dataset from the default datastore', () => {
    expect(REGISTER_DATASET_CODE).toContain('Dataset.File.from_files(path=(ws.get_default_datastore(), "fowl/**"))');
    expect(REGISTER_DATASET_CODE).toContain('.register(ws, "fowl")');
  });
});
