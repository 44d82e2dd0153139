import {
  EMPTY_FILTER,
  experimentNames,
  groupByExperiment,
  IRunFilter,
  matchesFilter,
  phaseSpans,
  rowSignature,
  runDuration,
  RunsStore,
  statusGroup
} from '../src/runs';
import { makeRun } from './fixtures';

function filter(overrides: Partial<IRunFilter> = {}): IRunFilter {
  return { ...EMPTY_FILTER, ...overrides };
}

describe('statusGroup', () => {
  it('maps final states to their own group and everything else to active', () => {
    expect(statusGroup('Completed')).toBe('completed');
    expect(statusGroup('Failed')).toBe('failed');
    expect(statusGroup('Canceled')).toBe('canceled');
    for (const s of ['NotStarted', 'Preparing', 'Queued', 'Starting', 'Running', 'Finalizing', 'CancelRequested']) {
      expect(statusGroup(s)).toBe('active');
    }
  });
});

describe('runDuration', () => {
  it('counts to now while the run is going', () => {
    expect(runDuration(makeRun({ started_at: 100 }), 130)).toBe(30);
  });

  it('uses ended_at once the run has finished, whatever now is', () => {
    const run = makeRun({ status: 'Completed', started_at: 100, ended_at: 160 });
    expect(runDuration(run, 10_000)).toBe(60);
  });

  it('is null before the run starts', () => {
    expect(runDuration(makeRun({ status: 'Queued', phases: [{ state: 'Queued', ts: 5 }] }), 50)).toBeNull();
    expect(runDuration(makeRun({ status: 'NotStarted', started_at: null }), 50)).toBeNull();
  });

  it('falls back to the Running phase for the start', () => {
    const run = makeRun({
      phases: [
        { state: 'Queued', ts: 10 },
        { state: 'Running', ts: 20 }
      ]
    });
    expect(runDuration(run, 50)).toBe(30);
  });

  it('ends a finished run without ended_at at its last phase', () => {
    const run = makeRun({
      status: 'Failed',
      phases: [
        { state: 'Running', ts: 20 },
        { state: 'Failed', ts: 45 }
      ]
    });
    expect(runDuration(run, 1000)).toBe(25);
  });

  it('never goes negative (clock skew)', () => {
    expect(runDuration(makeRun({ started_at: 100 }), 90)).toBe(0);
  });
});

describe('phaseSpans', () => {
  const phases = [
    { state: 'Preparing', ts: 0 },
    { state: 'Queued', ts: 5, message: 'waiting for gpu' },
    { state: 'Running', ts: 8 }
  ];

  it('measures each phase to the next and the last one to now while the run is active', () => {
    const spans = phaseSpans(makeRun({ status: 'Running', phases }), 20);
    expect(spans).toEqual([
      { state: 'Preparing', start: 0, seconds: 5 },
      { state: 'Queued', start: 5, seconds: 3, message: 'waiting for gpu' },
      { state: 'Running', start: 8, seconds: 12 }
    ]);
  });

  it('ends at the terminal phase and leaves it out', () => {
    const run = makeRun({ status: 'Completed', phases: [...phases, { state: 'Completed', ts: 18 }] });
    const spans = phaseSpans(run, 1000);
    expect(spans.map(s => s.state)).toEqual(['Preparing', 'Queued', 'Running']);
    expect(spans[2].seconds).toBe(10);
  });

  it('does not grow a finished run whose phases lack the final one', () => {
    const spans = phaseSpans(makeRun({ status: 'Canceled', phases }), 1000);
    expect(spans[2].seconds).toBe(0);
  });

  it('is empty without phases', () => {
    expect(phaseSpans(makeRun(), 10)).toEqual([]);
  });
});

describe('matchesFilter', () => {
  const run = makeRun({
    id: 'mnist_1700000000_deadbeef',
    experiment: 'mnist',
    status: 'Failed',
    script: 'train_cnn.py',
    tags: { lr: '0.01', Owner: 'Alice', display_name: 'Baseline' }
  });

  it('passes everything with the empty filter', () => {
    expect(matchesFilter(run, EMPTY_FILTER)).toBe(true);
  });

  it('filters by status group', () => {
    expect(matchesFilter(run, filter({ statuses: ['failed'] }))).toBe(true);
    expect(matchesFilter(run, filter({ statuses: ['active', 'completed'] }))).toBe(false);
    expect(matchesFilter(makeRun({ status: 'CancelRequested' }), filter({ statuses: ['active'] }))).toBe(true);
    expect(matchesFilter(makeRun({ status: 'CancelRequested' }), filter({ statuses: ['canceled'] }))).toBe(false);
  });

  it('filters by experiment', () => {
    expect(matchesFilter(run, filter({ experiment: 'mnist' }))).toBe(true);
    expect(matchesFilter(run, filter({ experiment: 'cifar' }))).toBe(false);
  });

  it('searches id, script and tags case-insensitively', () => {
    expect(matchesFilter(run, filter({ search: 'DEADBEEF' }))).toBe(true);
    expect(matchesFilter(run, filter({ search: 'cnn' }))).toBe(true);
    expect(matchesFilter(run, filter({ search: 'alice' }))).toBe(true);
    expect(matchesFilter(run, filter({ search: 'baseline' }))).toBe(true);
    expect(matchesFilter(run, filter({ search: 'resnet' }))).toBe(false);
  });

  it('matches "key:value" and "key=value" against tags', () => {
    expect(matchesFilter(run, filter({ search: 'lr:0.01' }))).toBe(true);
    expect(matchesFilter(run, filter({ search: 'owner=alice' }))).toBe(true);
    expect(matchesFilter(run, filter({ search: 'lr:0.1' }))).toBe(false);
    expect(matchesFilter(run, filter({ search: 'owner:bob' }))).toBe(false);
  });

  it('requires every word of a multi-word search', () => {
    expect(matchesFilter(run, filter({ search: '  mnist   lr:0.01 ' }))).toBe(true);
    expect(matchesFilter(run, filter({ search: 'mnist cifar' }))).toBe(false);
  });

  it('combines status, experiment and search', () => {
    expect(matchesFilter(run, filter({ statuses: ['failed'], experiment: 'mnist', search: 'cnn' }))).toBe(true);
    expect(matchesFilter(run, filter({ statuses: ['failed'], experiment: 'mnist', search: 'rnn' }))).toBe(false);
  });
});

describe('groupByExperiment', () => {
  const runs = [
    makeRun({ id: 'a1', experiment: 'a', created_at: 10, status: 'Completed' }),
    makeRun({ id: 'b1', experiment: 'b', created_at: 20, status: 'Running' }),
    makeRun({ id: 'a2', experiment: 'a', created_at: 30, status: 'Queued' }),
    makeRun({ id: 'c1', experiment: 'c', created_at: 5, status: 'Failed' }),
    makeRun({ id: 'a3', experiment: 'a', created_at: 25, status: 'Running' })
  ];

  it('groups by experiment, newest group first, runs newest first, with active counts', () => {
    const groups = groupByExperiment(runs);
    expect(groups.map(g => g.experiment)).toEqual(['a', 'b', 'c']);
    expect(groups[0].runs.map(r => r.id)).toEqual(['a2', 'a3', 'a1']);
    expect(groups.map(g => g.active)).toEqual([2, 1, 0]);
  });

  it('applies the filter before grouping', () => {
    const groups = groupByExperiment(runs, filter({ statuses: ['active'] }));
    expect(groups.map(g => g.experiment)).toEqual(['a', 'b']);
    expect(groups[0].runs.map(r => r.id)).toEqual(['a2', 'a3']);

    const done = groupByExperiment(runs, filter({ statuses: ['completed', 'failed'] }));
    // 'a' is now ordered by its newest *remaining* run (10), after nothing newer
    expect(done.map(g => [g.experiment, g.runs.map(r => r.id)])).toEqual([
      ['a', ['a1']],
      ['c', ['c1']]
    ]);
  });

  it('does not reorder the input', () => {
    const input = [...runs];
    groupByExperiment(input);
    expect(input.map(r => r.id)).toEqual(runs.map(r => r.id));
  });

  it('lists experiment names sorted and distinct', () => {
    expect(experimentNames(runs)).toEqual(['a', 'b', 'c']);
  });
});

describe('RunsStore', () => {
  it('reset sorts newest first and keeps at most `limit` runs', () => {
    const store = new RunsStore(2);
    store.reset([
      makeRun({ id: 'old', created_at: 1 }),
      makeRun({ id: 'new', created_at: 3 }),
      makeRun({ id: 'mid', created_at: 2 })
    ]);
    expect(store.runs.map(r => r.id)).toEqual(['new', 'mid']);
    expect(store.get('old')).toBeUndefined();
    expect(store.get('mid')?.created_at).toBe(2);
  });

  it('reset replaces what was there', () => {
    const store = new RunsStore();
    store.reset([makeRun({ id: 'x' })]);
    store.reset([makeRun({ id: 'y' })]);
    expect(store.runs.map(r => r.id)).toEqual(['y']);
    expect(store.get('x')).toBeUndefined();
  });

  it('upsert inserts in order and updates in place', () => {
    const store = new RunsStore();
    store.reset([makeRun({ id: 'a', created_at: 1 }), makeRun({ id: 'c', created_at: 3 })]);
    expect(store.upsert(makeRun({ id: 'b', created_at: 2 }))).toBe(true);
    expect(store.runs.map(r => r.id)).toEqual(['c', 'b', 'a']);

    expect(store.upsert(makeRun({ id: 'b', created_at: 2, status: 'Completed' }))).toBe(true);
    expect(store.runs.map(r => r.id)).toEqual(['c', 'b', 'a']);
    expect(store.get('b')?.status).toBe('Completed');
    expect(store.runs[1].status).toBe('Completed');
  });

  it('upsert of an identical run changes nothing and notifies no one', () => {
    const store = new RunsStore();
    store.reset([makeRun({ id: 'a', tags: { k: 'v' } })]);
    const listener = jest.fn();
    store.subscribe(listener);
    expect(store.upsert(makeRun({ id: 'a', tags: { k: 'v' } }))).toBe(false);
    expect(listener).not.toHaveBeenCalled();
  });

  it('applyMessage understands the feed and rejects anything else', () => {
    const store = new RunsStore();
    expect(store.applyMessage({ type: 'runs', runs: [makeRun({ id: 'a', created_at: 1 })] })).toBe(true);
    expect(store.applyMessage({ type: 'run', run: makeRun({ id: 'b', created_at: 2 }) })).toBe(true);
    expect(store.runs.map(r => r.id)).toEqual(['b', 'a']);

    const listener = jest.fn();
    store.subscribe(listener);
    for (const garbage of [
      null,
      undefined,
      'runs',
      42,
      {},
      { type: 'runs' },
      { type: 'runs', runs: 'nope' },
      { type: 'run' },
      { type: 'run', run: { id: 7 } },
      { type: 'metrics', run: makeRun({ id: 'z' }) }
    ]) {
      expect(store.applyMessage(garbage)).toBe(false);
    }
    expect(listener).not.toHaveBeenCalled();
    expect(store.runs.map(r => r.id)).toEqual(['b', 'a']);
  });

  it('notifies subscribers of every change until they unsubscribe', () => {
    const store = new RunsStore();
    const one = jest.fn();
    const two = jest.fn();
    const off = store.subscribe(one);
    store.subscribe(two);
    store.reset([]);
    store.upsert(makeRun({ id: 'a' }));
    expect(one).toHaveBeenCalledTimes(2);
    off();
    store.upsert(makeRun({ id: 'a', status: 'Completed' }));
    expect(one).toHaveBeenCalledTimes(2);
    expect(two).toHaveBeenCalledTimes(3);
  });

  it('lets a listener unsubscribe while being notified', () => {
    const store = new RunsStore();
    const calls: string[] = [];
    const off = store.subscribe(() => {
      calls.push('first');
      off();
    });
    store.subscribe(() => calls.push('second'));
    store.reset([]);
    store.reset([]);
    expect(calls).toEqual(['first', 'second', 'second']);
  });
});

describe('rowSignature', () => {
  const base = makeRun({ status: 'Running' });
  it('changes with what a row shows, not with time passing', () => {
    const sig = rowSignature(base, false);
    expect(rowSignature({ ...base }, false)).toBe(sig);
    expect(rowSignature({ ...base, status: 'Completed' }, false)).not.toBe(sig);
    expect(rowSignature({ ...base, primary_metric: { name: 'acc', value: 0.9, step: 3 } }, false)).not.toBe(sig);
    expect(rowSignature({ ...base, error: 'boom' }, false)).not.toBe(sig);
    expect(rowSignature(base, true)).not.toBe(sig);
  });
});
