import {
  comparableMetrics,
  EMPTY_FILTER,
  experimentNames,
  extent,
  formatDuration,
  formatResources,
  formatValue,
  groupByExperiment,
  IMetricPoint,
  IRun,
  IRunFilter,
  isTerminal,
  LogBuffer,
  matchesFilter,
  MetricHistory,
  IMetricSeries,
  IMetricSeriesView,
  phaseSpans,
  raySummary,
  runDuration,
  RunsStore,
  sdkCode,
  searchLines,
  sortLogNames,
  statusGroup,
  ticks
} from '../src/model';

function makeRun(overrides: Partial<IRun> = {}): IRun {
  return {
    id: 'exp_1000_abcd',
    experiment: 'exp',
    status: 'Running',
    created_at: 1000,
    ...overrides
  };
}

function filter(overrides: Partial<IRunFilter> = {}): IRunFilter {
  return { ...EMPTY_FILTER, ...overrides };
}

let nextId = 1;
function pt(name: string, value: number | string, overrides: Partial<IMetricPoint> = {}): IMetricPoint {
  return { id: nextId++, rank: 0, name, step: null, value, ...overrides };
}

describe('statusGroup / isTerminal', () => {
  it('maps final states to their own group and everything else to active', () => {
    expect(statusGroup('Completed')).toBe('completed');
    expect(statusGroup('Failed')).toBe('failed');
    expect(statusGroup('Canceled')).toBe('canceled');
    for (const s of ['NotStarted', 'Preparing', 'Queued', 'Starting', 'Running', 'Finalizing', 'CancelRequested']) {
      expect(statusGroup(s)).toBe('active');
    }
  });

  it('treats only Completed, Failed and Canceled as terminal', () => {
    expect(['Completed', 'Failed', 'Canceled'].every(isTerminal)).toBe(true);
    expect(isTerminal('CancelRequested')).toBe(false);
    expect(isTerminal('Finalizing')).toBe(false);
    expect(isTerminal('Running')).toBe(false);
    expect(isTerminal('completed')).toBe(false);
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

describe('formatDuration', () => {
  it('formats each range', () => {
    expect(formatDuration(0.85)).toBe('850 ms');
    expect(formatDuration(2.345)).toBe('2.3 s');
    expect(formatDuration(12.4)).toBe('12 s');
    expect(formatDuration(185)).toBe('3 min 05 s');
    expect(formatDuration(60)).toBe('1 min 00 s');
    expect(formatDuration(2 * 3600 + 4 * 60 + 30)).toBe('2 h 04 min');
  });

  it('shows a dash when there is nothing to show', () => {
    expect(formatDuration(null)).toBe('—');
    expect(formatDuration(undefined)).toBe('—');
    expect(formatDuration(NaN)).toBe('—');
    expect(formatDuration(Infinity)).toBe('—');
  });
});

describe('formatValue', () => {
  it('keeps integers and text as they are', () => {
    expect(formatValue(42)).toBe('42');
    expect(formatValue(-3)).toBe('-3');
    expect(formatValue('nan')).toBe('nan');
    expect(formatValue(0)).toBe('0');
  });

  it('rounds to 4 significant digits', () => {
    expect(formatValue(0.123456)).toBe('0.1235');
    expect(formatValue(3.14159)).toBe('3.142');
    expect(formatValue(1234.5678)).toBe('1235');
    expect(formatValue(0.5)).toBe('0.5');
  });

  it('uses exponent notation for very small and very large values', () => {
    expect(formatValue(0.000012346)).toBe('1.235e-5');
    expect(formatValue(12345678.9)).toBe('1.235e+7');
  });

  it('is empty for a missing value', () => {
    expect(formatValue(null)).toBe('');
    expect(formatValue(undefined)).toBe('');
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

describe('MetricHistory', () => {
  it('ignores points at or before the cursor, so a resumed stream does not duplicate', () => {
    const h = new MetricHistory();
    const batch: IMetricPoint[] = [
      { id: 1, rank: 0, name: 'loss', step: 0, value: 1.0 },
      { id: 2, rank: 0, name: 'loss', step: 1, value: 0.8 }
    ];
    expect(h.add(batch)).toBe(2);
    expect(h.cursor).toBe(2);
    // the stream resumes and sends the overlap again, plus one new point
    expect(h.add([...batch, { id: 3, rank: 0, name: 'loss', step: 2, value: 0.6 }])).toBe(1);
    expect(h.series('loss').points).toEqual([
      [0, 1.0],
      [1, 0.8],
      [2, 0.6]
    ]);
    expect(h.cursor).toBe(3);
  });

  it('advances the cursor to the one the server gives, never back', () => {
    const h = new MetricHistory();
    h.add([{ id: 5, rank: 0, name: 'x', step: null, value: 1 }], 9);
    expect(h.cursor).toBe(9);
    h.add([], 4);
    expect(h.cursor).toBe(9);
    expect(h.add([{ id: 8, rank: 0, name: 'x', step: null, value: 2 }])).toBe(0);
  });

  it('lists names in first-logged order and ranks sorted numerically', () => {
    const h = new MetricHistory();
    h.add([
      pt('loss', 1, { rank: 10 }),
      pt('acc', 0.5, { rank: 2 }),
      pt('loss', 1, { rank: 2 }),
      pt('loss', 1, { rank: 0 })
    ]);
    expect(h.names).toEqual(['loss', 'acc']);
    expect(h.ranks('loss')).toEqual([0, 2, 10]);
    expect(h.ranks('nope')).toEqual([]);
  });

  it('charts by step, else by index, leaving text values out', () => {
    const h = new MetricHistory();
    h.add([
      pt('loss', 0.9, { step: 10 }),
      pt('loss', 'nan', { step: 20 }),
      pt('loss', 0.7, { step: 30 }),
      pt('lr', 0.1),
      pt('lr', 'inf'),
      pt('lr', 0.05)
    ]);
    expect(h.series('loss').points).toEqual([
      [10, 0.9],
      [30, 0.7]
    ]);
    expect(h.series('lr').points).toEqual([
      [0, 0.1],
      [2, 0.05]
    ]);
  });

  it('leaves non-finite numbers out of charts', () => {
    const h = new MetricHistory();
    h.add([pt('m', 1, { step: 0 }), pt('m', NaN, { step: 1 }), pt('m', Infinity, { step: 2 })]);
    expect(h.series('m').points).toEqual([[0, 1]]);
  });

  it('sorts points by step', () => {
    const h = new MetricHistory();
    h.add([pt('m', 3, { step: 3 }), pt('m', 1, { step: 1 }), pt('m', 2, { step: 2 })]);
    expect(h.series('m').points.map(p => p[0])).toEqual([1, 2, 3]);
  });

  it('labels series by rank', () => {
    const h = new MetricHistory();
    h.add([pt('loss', 1, { rank: 0 }), pt('loss', 1, { rank: 3 })]);
    expect(h.series('loss').label).toBe('loss');
    expect(h.series('loss', 3).label).toBe('loss [rank 3]');
    expect(h.series('loss', 3, 'run B').label).toBe('run B');
  });

  it('charts only metrics with at least two numeric points on some rank', () => {
    const h = new MetricHistory();
    h.add([
      pt('one', 1),
      pt('text', 'a'),
      pt('text', 'b'),
      pt('mixed', 1),
      pt('mixed', 'nan'),
      pt('split', 1, { rank: 0 }),
      pt('split', 2, { rank: 1 }),
      pt('two', 1, { rank: 1 }),
      pt('two', 2, { rank: 1 })
    ]);
    expect(h.chartable).toEqual(['two']);
  });

  it('gives the latest value per metric, preferring rank 0, else the lowest rank', () => {
    const h = new MetricHistory();
    h.add([
      pt('loss', 1.0, { rank: 1, step: 1 }),
      pt('loss', 0.5, { rank: 0, step: 1 }),
      pt('loss', 0.4, { rank: 0, step: 2 }),
      pt('loss', 0.1, { rank: 1, step: 2 }),
      pt('gpu_mem', 30, { rank: 3 }),
      pt('gpu_mem', 31, { rank: 2 }),
      pt('status', 'ok', { rank: 0, step: 7 })
    ]);
    expect(h.latest()).toEqual([
      { name: 'loss', value: 0.4, step: 2 },
      { name: 'gpu_mem', value: 31, step: null },
      { name: 'status', value: 'ok', step: 7 }
    ]);
    expect(h.latest(1)).toEqual([{ name: 'loss', value: 0.1, step: 2 }]);
  });
});

describe('MetricHistory with a downsampled view', () => {
  const view = (cursor: number, ...series: Array<Partial<IMetricSeries>>): IMetricSeriesView => ({
    cursor,
    series: series.map(s => ({ name: 'loss', rank: 0, count: 0, numeric: 0, downsampled: true, points: [], last: null, ...s }))
  });

  it('starts from the view and streams on from its cursor', () => {
    const h = new MetricHistory();
    h.load(view(100, { count: 1000000, numeric: 1000000, points: [[0, 9], [500000, 0.1], [999999, 0.5]], last: { value: 0.5, step: 999999 } }));
    expect(h.cursor).toBe(100);
    expect(h.chartable).toEqual(['loss']);
    expect(h.latest()).toEqual([{ name: 'loss', value: 0.5, step: 999999 }]);
    // a point the view already has (id <= cursor) is not added again; a later one is
    expect(h.add([{ id: 100, rank: 0, name: 'loss', step: 999999, value: 0.5 }])).toBe(0);
    expect(h.add([{ id: 101, rank: 0, name: 'loss', step: 1000000, value: 0.4 }])).toBe(1);
    expect(h.series('loss').points).toEqual([[0, 9], [500000, 0.1], [999999, 0.5], [1000000, 0.4]]);
    expect(h.latest()).toEqual([{ name: 'loss', value: 0.4, step: 1000000 }]);
    expect(h.streamed).toBe(1);
  });

  it('a reloaded view replaces the base and drops the streamed points it covers', () => {
    const h = new MetricHistory();
    h.load(view(10, { count: 2, numeric: 2, points: [[0, 1], [1, 2]] }));
    h.add([
      { id: 11, rank: 0, name: 'loss', step: 2, value: 3 },
      { id: 12, rank: 0, name: 'loss', step: 3, value: 4 }
    ]);
    h.load(view(11, { count: 3, numeric: 3, points: [[0, 1], [2, 3]], last: { value: 3, step: 2 } }));
    expect(h.streamed).toBe(1);
    expect(h.cursor).toBe(12); // never back
    expect(h.series('loss').points).toEqual([[0, 1], [2, 3], [3, 4]]);
  });

  it('counts the view\'s numeric points for charting and keeps text series in the table', () => {
    const h = new MetricHistory();
    h.load(view(5, { name: 'one', count: 1, numeric: 1, points: [[0, 1]], last: { value: 1, step: 0 } },
      { name: 'status', count: 3, numeric: 0, points: [], last: { value: 'ok', step: null } }));
    expect(h.chartable).toEqual([]);
    h.add([pt('one', 2, { id: 6, step: 1 })]);
    expect(h.chartable).toEqual(['one']);
    expect(h.latest().map(m => m.name)).toEqual(['one', 'status']);
  });

  it('places streamed points without a step after the view\'s', () => {
    const h = new MetricHistory();
    h.load(view(3, { count: 3, numeric: 3, points: [[0, 1], [1, 2], [2, 3]] }));
    h.add([pt('loss', 4, { id: 4 })]);
    expect(h.series('loss').points[3]).toEqual([3, 4]);
  });
});

describe('comparableMetrics', () => {
  function history(...names: string[]): MetricHistory {
    const h = new MetricHistory();
    h.add(names.flatMap(n => [pt(n, 1), pt(n, 2)]));
    return h;
  }

  it('keeps the metrics every run charts', () => {
    expect(comparableMetrics([history('loss', 'acc', 'lr'), history('acc', 'loss'), history('loss', 'acc')])).toEqual([
      'loss',
      'acc'
    ]);
  });

  it('falls back to the union when nothing is common', () => {
    expect(comparableMetrics([history('loss', 'acc'), history('reward'), history('acc')]).sort()).toEqual([
      'acc',
      'loss',
      'reward'
    ]);
  });

  it('is empty for no runs', () => {
    expect(comparableMetrics([])).toEqual([]);
  });
});

describe('extent', () => {
  it('pads y by 5% of the range and spans x exactly', () => {
    const e = extent([
      { label: 'a', points: [[0, 0], [5, 10]] },
      { label: 'b', points: [[10, 20]] }
    ]);
    expect(e).not.toBeNull();
    expect(e!.x).toEqual([0, 10]);
    expect(e!.y[0]).toBeCloseTo(-1);
    expect(e!.y[1]).toBeCloseTo(21);
  });

  it('gives a flat line a band around its value', () => {
    const e = extent([{ label: 'a', points: [[0, 50], [1, 50]] }])!;
    expect(e.y[0]).toBeCloseTo(45);
    expect(e.y[1]).toBeCloseTo(55);
    const zero = extent([{ label: 'a', points: [[0, 0], [1, 0]] }])!;
    expect(zero.y).toEqual([-1, 1]);
    const negative = extent([{ label: 'a', points: [[0, -10], [1, -10]] }])!;
    expect(negative.y[0]).toBeCloseTo(-11);
    expect(negative.y[1]).toBeCloseTo(-9);
  });

  it('widens a single x value', () => {
    expect(extent([{ label: 'a', points: [[3, 1]] }])!.x).toEqual([2, 4]);
  });

  it('is null without points', () => {
    expect(extent([])).toBeNull();
    expect(extent([{ label: 'a', points: [] }])).toBeNull();
  });
});

describe('ticks', () => {
  function isRoundStep(step: number): boolean {
    const mag = Math.pow(10, Math.floor(Math.log10(step)));
    return [1, 2, 2.5, 5, 10].some(m => Math.abs(step - m * mag) < 1e-9 * step);
  }

  it('gives round values for a simple range', () => {
    expect(ticks(0, 10)).toEqual([0, 2, 4, 6, 8, 10]);
    expect(ticks(0, 1)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
  });

  it('covers the range with evenly spaced round values inside it', () => {
    for (const [lo, hi] of [
      [0.1234, 0.9876],
      [-3.7, 12.2],
      [1e-4, 3e-4],
      [980, 1020],
      [-1, 1],
      [0.3, 0.7]
    ]) {
      const t = ticks(lo, hi);
      expect(t.length).toBeGreaterThanOrEqual(2);
      expect(t.length).toBeLessThanOrEqual(11);
      const step = t[1] - t[0];
      expect(isRoundStep(step)).toBe(true);
      expect(t[0]).toBeGreaterThanOrEqual(lo - step * 1e-9);
      expect(t[0] - lo).toBeLessThan(step);
      expect(t[t.length - 1]).toBeLessThanOrEqual(hi + step * 1e-9);
      expect(hi - t[t.length - 1]).toBeLessThan(step);
      for (let i = 1; i < t.length; i++) {
        expect(t[i] - t[i - 1]).toBeCloseTo(step, 9);
      }
      // no floating-point noise such as 0.30000000000000004
      for (const v of t) {
        expect(String(v).length).toBeLessThan(10);
      }
    }
  });

  it('returns one value for an empty or invalid range', () => {
    expect(ticks(5, 5)).toEqual([5]);
    expect(ticks(5, 1)).toEqual([5]);
    expect(ticks(0, Infinity)).toEqual([0]);
  });
});

describe('LogBuffer', () => {
  it('joins lines split across chunks and holds back the unfinished one', () => {
    const b = new LogBuffer();
    expect(b.append('epoch 1\nepo')).toEqual(['epoch 1']);
    expect(b.lines).toEqual(['epoch 1']);
    expect(b.append('ch 2\n')).toEqual(['epoch 2']);
    expect(b.append('no newline yet')).toEqual([]);
    expect(b.lines).toEqual(['epoch 1', 'epoch 2']);
    expect(b.append('\n\n')).toEqual(['no newline yet', '']);
    expect(b.lines).toEqual(['epoch 1', 'epoch 2', 'no newline yet', '']);
  });

  it('keeps only the last maxLines lines and counts what it dropped', () => {
    const b = new LogBuffer(3);
    b.append('1\n2\n');
    expect(b.dropped).toBe(0);
    b.append('3\n4\n5\n');
    expect(b.lines).toEqual(['3', '4', '5']);
    expect(b.dropped).toBe(2);
    b.append('6\n');
    expect(b.lines).toEqual(['4', '5', '6']);
    expect(b.dropped).toBe(3);
  });

  it('tracks the offset to resume from', () => {
    const b = new LogBuffer();
    expect(b.offset).toBe(0);
    b.append('abc\n', 4);
    expect(b.offset).toBe(4);
    b.append('de');
    expect(b.offset).toBe(4);
    b.append('f\n', 7);
    expect(b.offset).toBe(7);
  });
});

describe('searchLines', () => {
  const lines = ['Epoch 1 loss=0.9', 'WARNING: slow', 'epoch 2 loss=0.5', ''];

  it('finds lines case-insensitively', () => {
    expect(searchLines(lines, 'EPOCH')).toEqual([0, 2]);
    expect(searchLines(lines, 'warning')).toEqual([1]);
    expect(searchLines(lines, 'missing')).toEqual([]);
  });

  it('matches every line for an empty query', () => {
    expect(searchLines(lines, '')).toEqual([0, 1, 2, 3]);
  });
});

describe('sortLogNames', () => {
  it('orders rank logs numerically, then the rest by name', () => {
    expect(
      sortLogNames(['user.log', 'rank_10.txt', 'supervisor.txt', 'rank_2.txt', 'prepare.txt', 'rank_0.txt', 'node_1.txt'])
    ).toEqual(['rank_0.txt', 'rank_2.txt', 'rank_10.txt', 'node_1.txt', 'prepare.txt', 'supervisor.txt', 'user.log']);
  });

  it('does not mistake other names for rank logs and leaves the input alone', () => {
    const names = ['rank_x.txt', 'rank_3.txt.bak', 'rank_1.txt'];
    expect(sortLogNames(names)).toEqual(['rank_1.txt', 'rank_3.txt.bak', 'rank_x.txt']);
    expect(names).toEqual(['rank_x.txt', 'rank_3.txt.bak', 'rank_1.txt']);
  });
});

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
      "    extra_files={'cell_train.py': open('cell_train.py').read()},  # the %%train cell's text"
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
      "    extra_files={'cell_train.py': open('cell_train.py').read()},  # the %%train cell's text"
    );
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

describe('Ray cluster view', () => {
  it('formats resources CPU, GPU, custom, then memory, with usage where known', () => {
    expect(formatResources({ memory: 2 * 1024 ** 3, CPU: 2, GPU: 1, accel: 0.5 }, { CPU: 2, GPU: 0, memory: 0 }))
      .toBe('CPU 2/2 · GPU 0/1 · accel 0.5 · memory 0.0/2.0 GiB');
    expect(formatResources({ CPU: 1.25 })).toBe('CPU 1.25');
    expect(formatResources({})).toBe('');
  });

  it('summarizes nodes, busy and idle, starting nodes and the standing request', () => {
    const node = (state: string) => ({ node_id: 'n', address: '10.0.0.1', state, resources: { CPU: 2 } });
    expect(raySummary({ state: 'ready', nodes: [node('busy'), node('idle'), node('idle')],
      requested: [{ CPU: 2 }], pending_nodes: 2 }))
      .toBe('3 Ray nodes · 1 busy · 2 idle · 2 starting · 1 bundle requested');
    expect(raySummary({ state: 'ready', nodes: [node('alive')] })).toBe('1 Ray node');
    expect(raySummary({ state: 'unreachable', nodes: [], error: 'ConnectionError: refused' }))
      .toBe('unreachable: ConnectionError: refused');
    expect(raySummary({ state: 'connecting', nodes: [] })).toBe('connecting…');
    expect(raySummary({ state: 'not started', nodes: [], error: 'The local Ray head starts with the first run.' }))
      .toBe('The local Ray head starts with the first run.');
  });
});
