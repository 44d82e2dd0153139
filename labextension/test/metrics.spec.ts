import {
  comparableMetrics,
  extent,
  IMetricPoint,
  IMetricSeries,
  IMetricSeriesView,
  MetricHistory,
  ticks
} from '../src/metrics';

let nextId = 1;
function pt(name: string, value: number | string, overrides: Partial<IMetricPoint> = {}): IMetricPoint {
  return { id: nextId++, rank: 0, name, step: null, value, ...overrides };
}

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
