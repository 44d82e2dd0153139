import {
  axisPosition,
  axisTicks,
  buildAxes,
  metricAxis,
  paramAxis,
  pathData,
  polylines,
  quality
} from '../src/parallel';
import { ISweepConfig } from '../src/sweeps';
import { makeRun } from './fixtures';

const CFG: ISweepConfig = {
  parameter_space: {
    '--x': ['choice', [[0.5, 0.1, 0.45, 0.9]]],
    '--lr': ['loguniform', [Math.log(1e-4), Math.log(1e-1)]],
    '--opt': ['choice', [['sgd', 'adam']]]
  },
  sampling: 'random',
  primary_metric_name: 'val_acc',
  primary_metric_goal: 'maximize',
  max_total_runs: 4
};

describe('paramAxis', () => {
  it('spans the choices of a numeric choice, whatever the children have so far', () => {
    const axis = paramAxis('--x', CFG.parameter_space['--x'], [0.5]);
    expect(axis.kind).toBe('linear');
    expect(axis.domain).toEqual([0.1, 0.9]);
    expect(axis.label).toBe('x');
    expect(axisPosition(axis, 0.1)).toBe(0);
    expect(axisPosition(axis, 0.9)).toBe(1);
    expect(axisPosition(axis, 0.5)).toBeCloseTo(0.5);
  });

  it('widens the range to values outside it, and bands a single value', () => {
    expect(paramAxis('--y', ['uniform', [0, 1]], [1.5]).domain).toEqual([0, 1.5]);
    expect(paramAxis('--n', ['randint', [4]], []).domain).toEqual([0, 3]);
    expect(paramAxis('--z', undefined, [2, 2]).domain).toEqual([1.8, 2.2]);
    expect(paramAxis('--z', undefined, [0]).domain).toEqual([-1, 1]);
  });

  it('puts loguniform on a log axis over exp(low)..exp(high)', () => {
    const axis = paramAxis('--lr', CFG.parameter_space['--lr'], [0.01]);
    expect(axis.kind).toBe('log');
    expect(axis.domain[0]).toBeCloseTo(1e-4);
    expect(axis.domain[1]).toBeCloseTo(1e-1);
    expect(axisPosition(axis, 0.01)).toBeCloseTo(2 / 3);
    expect(axisPosition(axis, 1e-3)).toBeCloseTo(1 / 3);
    expect(axisPosition(axis, -1)).toBeNull();
    expect(axisTicks(axis).map(t => t.label)).toEqual(['1.000e-4', '0.001', '0.01', '0.1']);
  });

  it('makes a category axis of choices that are not numbers, in their order, and unknown values after', () => {
    const axis = paramAxis('--opt', CFG.parameter_space['--opt'], ['adam', 'rmsprop']);
    expect(axis.kind).toBe('category');
    expect(axis.categories).toEqual(['sgd', 'adam', 'rmsprop']);
    expect(axisPosition(axis, 'sgd')).toBe(0);
    expect(axisPosition(axis, 'adam')).toBe(0.5);
    expect(axisPosition(axis, 'rmsprop')).toBe(1);
    expect(axisPosition(axis, undefined)).toBeNull();
    expect(axisPosition(axis, 'lamb')).toBeNull();
    expect(axisTicks(axis).map(t => [t.label, t.pos])).toEqual([['sgd', 0], ['adam', 0.5], ['rmsprop', 1]]);
    expect(axisPosition(paramAxis('--one', undefined, ['a']), 'a')).toBe(0.5);
  });

  it('treats mixed values as categories', () => {
    const axis = paramAxis('--m', undefined, [1, 'auto']);
    expect(axis.kind).toBe('category');
    expect(axis.categories).toEqual(['1', 'auto']);
  });

  it('clamps values outside the domain onto the axis', () => {
    const axis = paramAxis('--x', ['uniform', [0, 1]], []);
    expect(axisPosition(axis, 2)).toBe(1);
    expect(axisPosition(axis, Number.NaN)).toBeNull();
  });
});

describe('metric axis, lines and quality', () => {
  const kids = [
    makeRun({ id: 'a', properties: { hyperparameters: { '--x': 0.5, '--lr': 0.01, '--opt': 'adam' } }, best_primary_metric: 1.0 }),
    makeRun({ id: 'b', properties: { hyperparameters: { '--x': 0.1, '--lr': 0.001, '--opt': 'sgd' } }, best_primary_metric: 0.42 }),
    makeRun({ id: 'c', properties: { hyperparameters: { '--x': 0.9 } }, best_primary_metric: null })
  ];

  it('spans the values the children have', () => {
    expect(metricAxis('val_acc', [0.42, 1, null]).domain).toEqual([0.42, 1]);
    expect(metricAxis('val_acc', [null]).domain).toEqual([0, 1]);
  });

  it('gives an axis per hyperparameter and one for the metric, last', () => {
    const axes = buildAxes(kids, ['--x', '--lr', '--opt'], CFG);
    expect(axes.map(a => [a.key, a.kind, a.metric])).toEqual([
      ['--x', 'linear', false],
      ['--lr', 'log', false],
      ['--opt', 'category', false],
      ['val_acc', 'linear', true]
    ]);
  });

  it('places every child on every axis, null where it has no value', () => {
    const axes = buildAxes(kids, ['--x', '--lr', '--opt'], CFG);
    const lines = polylines(kids, axes, CFG);
    expect(lines.map(l => l.runId)).toEqual(['a', 'b', 'c']);
    expect(lines[0].positions.map(p => (p === null ? null : Number(p.toFixed(3))))).toEqual([0.5, 0.667, 1, 1]);
    expect(lines[1].positions.map(p => (p === null ? null : Number(p.toFixed(3))))).toEqual([0, 0.333, 0, 0]);
    expect(lines[2].positions).toEqual([1, null, null, null]);
    expect(lines[2].metric).toBeNull();
  });

  it('rates the best value 1 per the goal', () => {
    const axis = metricAxis('loss', [0.1, 0.5]);
    expect(quality(0.5, axis, 'maximize')).toBe(1);
    expect(quality(0.5, axis, 'minimize')).toBe(0);
    expect(quality(0.1, axis, 'minimize')).toBe(1);
    expect(quality(null, axis, 'minimize')).toBeNull();
  });
});

describe('pathData', () => {
  it('draws one line through the points and breaks it where one is missing', () => {
    expect(pathData([[0, 10], [50, 20], [100, 5]])).toBe('M0.0,10.0L50.0,20.0L100.0,5.0');
    expect(pathData([[0, 10], null, [100, 5], [150, 6]])).toBe('M0.0,10.0h0.01M100.0,5.0L150.0,6.0');
    expect(pathData([null, null])).toBe('');
  });
});
