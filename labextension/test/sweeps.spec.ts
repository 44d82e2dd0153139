import { EMPTY_FILTER, groupByExperiment, IRun, RunsStore } from '../src/runs';
import {
  bestChild,
  cancelReason,
  childMetric,
  countsText,
  formatHyperparameters,
  hyperparameterNames,
  ISweepConfig,
  isStopped,
  isSweep,
  paramLabel,
  policySummary,
  sortChildren,
  sweepConfig,
  sweepCounts
} from '../src/sweeps';
import { makeRun } from './fixtures';

const CFG: ISweepConfig = {
  experiment: 'hd',
  parameter_space: { '--x': ['choice', [[0.5, 0.1, 0.45, 0.9]]], '--y': ['uniform', [0, 2]] },
  sampling: 'grid',
  seed: null,
  policy: { name: 'BanditPolicy', evaluation_interval: 1, delay_evaluation: 2, slack_factor: 0.1 },
  primary_metric_name: 'val_acc',
  primary_metric_goal: 'maximize',
  max_total_runs: 8,
  max_concurrent_runs: 2,
  max_duration_minutes: null,
  tags: {}
};

function sweep(overrides: Partial<IRun> = {}, cfg: Partial<ISweepConfig> = {}): IRun {
  return makeRun({ id: 'hd_1', experiment: 'hd', properties: { sweep: { ...CFG, ...cfg } }, ...overrides });
}

let n = 0;
function child(hp: Record<string, unknown>, overrides: Partial<IRun> = {}, props: Record<string, unknown> = {}): IRun {
  n += 1;
  return makeRun({
    id: `hd_child_${n}`,
    experiment: 'hd',
    parent_id: 'hd_1',
    created_at: 1000 + n,
    properties: { hyperparameters: hp, sweep_trial: n, ...props },
    ...overrides
  });
}

const BANDIT = 'BanditPolicy: val_acc 0.22 at interval 2 is below 0.26 / 1.1';

describe('sweep records', () => {
  it('finds the config of a sweep and nothing on an ordinary run', () => {
    expect(isSweep(sweep())).toBe(true);
    expect(sweepConfig(sweep())?.primary_metric_goal).toBe('maximize');
    expect(isSweep(makeRun())).toBe(false);
    expect(isSweep(makeRun({ properties: { sweep: 'yes' } }))).toBe(false);
    expect(sweepConfig(undefined)).toBeNull();
  });

  it('tells a child a policy stopped from one a user canceled', () => {
    const stopped = child({ '--x': 0.9 }, { status: 'Canceled' }, { cancel_reason: BANDIT });
    const stopping = child({ '--x': 0.9 }, { status: 'CancelRequested' }, { cancel_reason: BANDIT });
    const canceled = child({ '--x': 0.1 }, { status: 'Canceled' });
    expect(isStopped(stopped)).toBe(true);
    expect(isStopped(stopping)).toBe(true);
    expect(cancelReason(stopped)).toBe(BANDIT);
    expect(isStopped(canceled)).toBe(false);
    expect(isStopped(child({}, { status: 'Completed' }, { cancel_reason: 'late' }))).toBe(false);
  });

  it("takes a child's best value of the primary metric, else its latest of that metric", () => {
    expect(childMetric(child({}, { best_primary_metric: 0.9, primary_metric: { name: 'val_acc', value: 0.5 } }), 'val_acc')).toBe(0.9);
    expect(childMetric(child({}, { best_primary_metric: null, primary_metric: { name: 'val_acc', value: 0.5 } }), 'val_acc')).toBeNull();
    expect(childMetric(child({}, { primary_metric: { name: 'val_acc', value: 0.5 } }), 'val_acc')).toBe(0.5);
    expect(childMetric(child({}, { primary_metric: { name: 'loss', value: 0.5 } }), 'val_acc')).toBeNull();
  });
});

describe('sortChildren', () => {
  const a = child({ '--x': 0.5 }, { best_primary_metric: 0.7 });
  const b = child({ '--x': 0.1 }, { best_primary_metric: null });
  const c = child({ '--x': 0.45 }, { best_primary_metric: 0.95 });
  const d = child({ '--x': 0.9 }, { best_primary_metric: 0.2 });
  const e = child({ '--x': 0.3 });

  it('puts the highest first when the goal is to maximize, children without a value last', () => {
    expect(sortChildren([a, b, c, d, e], CFG).map(r => r.id)).toEqual([c.id, a.id, d.id, b.id, e.id]);
  });

  it('puts the lowest first when the goal is to minimize', () => {
    const cfg = { ...CFG, primary_metric_goal: 'minimize' as const };
    expect(sortChildren([a, b, c, d, e], cfg).map(r => r.id)).toEqual([d.id, a.id, c.id, b.id, e.id]);
  });

  it('orders ties by trial number and leaves its input alone', () => {
    const t1 = child({}, { best_primary_metric: 0.5 }, { sweep_trial: 7 });
    const t2 = child({}, { best_primary_metric: 0.5 }, { sweep_trial: 3 });
    const input = [t1, t2];
    expect(sortChildren(input, CFG).map(r => r.id)).toEqual([t2.id, t1.id]);
    expect(input[0]).toBe(t1);
  });

  it('finds the best child per the goal', () => {
    expect(bestChild([a, b, c, d], CFG)?.run.id).toBe(c.id);
    expect(bestChild([a, b, c, d], { ...CFG, primary_metric_goal: 'minimize' })?.value).toBe(0.2);
    expect(bestChild([b, e], CFG)).toBeNull();
  });
});

describe('sweepCounts', () => {
  it('counts done, stopped, failed, canceled and running children against max_total_runs', () => {
    const children = [
      child({}, { status: 'Completed' }),
      child({}, { status: 'Completed' }),
      child({}, { status: 'Canceled' }, { cancel_reason: BANDIT }),
      child({}, { status: 'Canceled' }, { cancel_reason: BANDIT }),
      child({}, { status: 'Failed' }),
      child({}, { status: 'Running' }),
      child({}, { status: 'CancelRequested' }, { cancel_reason: BANDIT })
    ];
    const counts = sweepCounts(children, sweepConfig(sweep()));
    expect(counts).toEqual({ total: 7, planned: 8, done: 5, completed: 2, stopped: 2, failed: 1, canceled: 0, active: 2 });
    expect(countsText(counts)).toBe('5/8 done, 2 stopped, 1 failed, 2 running');
  });

  it('says only what there is', () => {
    expect(countsText(sweepCounts([], sweepConfig(sweep())))).toBe('0/8 done');
    const done = [child({}, { status: 'Completed' }), child({}, { status: 'Canceled' })];
    expect(countsText(sweepCounts(done, sweepConfig(sweep({}, { max_total_runs: 2 }))))).toBe('2/2 done, 1 canceled');
  });

  it('plans at least as many children as there are', () => {
    const kids = [child({}), child({}), child({})];
    expect(sweepCounts(kids, sweepConfig(sweep({}, { max_total_runs: 2 }))).planned).toBe(3);
    expect(sweepCounts(kids, null).planned).toBe(3);
  });
});

describe('hyperparameter labels', () => {
  it("lists the parameter space's names first, in its order, then any other a child has", () => {
    const kids = [child({ '--y': 1, '--x': 0.5 }), child({ '--z': 'a', '--x': 0.1 }), child({ '--a': 1 })];
    expect(hyperparameterNames(kids, sweepConfig(sweep()))).toEqual(['--x', '--y', '--a', '--z']);
    expect(hyperparameterNames(kids, null)).toEqual(['--a', '--x', '--y', '--z']);
  });

  it('writes the values compactly, without dashes', () => {
    expect(paramLabel('--learning-rate')).toBe('learning-rate');
    expect(paramLabel('lr')).toBe('lr');
    expect(formatHyperparameters({ '--y': 1, '--x': 0.123456, '--opt': 'adam' }, ['--x', '--y', '--opt']))
      .toBe('x=0.1235 y=1 opt=adam');
    expect(formatHyperparameters({ '--x': 0.3 })).toBe('x=0.3');
  });

  it('summarizes the policy', () => {
    expect(policySummary(CFG.policy)).toBe('BanditPolicy (evaluation_interval 1, delay_evaluation 2, slack_factor 0.1)');
    expect(policySummary(null)).toBe('no early termination');
    expect(policySummary({ name: 'NoTerminationPolicy' })).toBe('no early termination');
  });
});

describe('sweeps in the run list', () => {
  const parent = sweep({ created_at: 100 });
  const kids = [
    child({ '--x': 0.5 }, { created_at: 200, tags: { display_name: 'needle' } }),
    child({ '--x': 0.1 }, { created_at: 300 })
  ];
  const other = makeRun({ id: 'hd_2', experiment: 'hd', created_at: 150 });

  it('groups children under their sweep, not as rows of their own', () => {
    const groups = groupByExperiment([parent, ...kids, other]);
    expect(groups).toHaveLength(1);
    expect(groups[0].runs.map(r => r.id)).toEqual(['hd_2', 'hd_1']);
  });

  it('shows a sweep when the search matches one of its children', () => {
    const groups = groupByExperiment([parent, ...kids, other], { ...EMPTY_FILTER, search: 'needle' });
    expect(groups.map(g => g.runs.map(r => r.id))).toEqual([['hd_1']]);
    const none = groupByExperiment([parent, ...kids, other], { ...EMPTY_FILTER, search: 'needle', statuses: ['completed'] });
    expect(none).toEqual([]);
  });

  it('keeps children in the store beside the top-level limit, and drops them with their sweep', () => {
    const store = new RunsStore(1);
    store.reset([parent, ...kids]);
    expect(store.runs).toHaveLength(3);
    expect(store.children('hd_1').map(r => r.id)).toEqual([kids[1].id, kids[0].id]);
    store.upsert(makeRun({ id: 'newer', experiment: 'hd', created_at: 500 }));
    expect(store.runs.map(r => r.id)).toEqual(['newer']);
    expect(store.children('hd_1')).toEqual([]);
  });

  it('keeps a child that arrives before its sweep', () => {
    const store = new RunsStore(5);
    store.applyMessage({ type: 'run', run: kids[0] });
    store.applyMessage({ type: 'run', run: parent });
    expect(store.children('hd_1').map(r => r.id)).toEqual([kids[0].id]);
  });

  it("keeps a child's best value when an update comes without it", () => {
    const store = new RunsStore(5);
    store.reset([parent, { ...kids[0], best_primary_metric: 0.9 }]);
    expect('best_primary_metric' in kids[0]).toBe(false);
    store.upsert({ ...kids[0], status: 'Completed' });
    expect(store.get(kids[0].id)?.status).toBe('Completed');
    expect(store.get(kids[0].id)?.best_primary_metric).toBe(0.9);
    store.upsert({ ...kids[0], best_primary_metric: 0.95 });
    expect(store.get(kids[0].id)?.best_primary_metric).toBe(0.95);
  });
});
