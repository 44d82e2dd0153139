/**
 * The parts of the sidebar's rows that sweeps add: a sweep's row shows a badge, its children's
 * counts ("5/8 done, 2 stopped") and its best primary metric; a child's row shows its
 * hyperparameters in one line and, when a policy stopped it, the policy's reason.
 */

import { h } from './dom';
import { formatValue } from './format';
import { IRun } from './runs';
import {
  bestChild,
  cancelReason,
  countsText,
  formatHyperparameters,
  hyperparameters,
  ISweepConfig,
  isStopped,
  sweepCounts
} from './sweeps';

/** What a row shows besides a run's own fields (TrainSidebar._row). */
export interface IRowParts {
  /** In place of the compare checkbox (a sweep's expand toggle). */
  lead?: HTMLElement;
  /** In place of the latest primary metric. */
  metric?: HTMLElement;
  /** Lines under the row's own. */
  extra?: HTMLElement[];
  className?: string;
  /** More lines for the row's tooltip. */
  title?: string;
  /** data-* attributes. */
  data?: Record<string, string>;
}

export function sweepRowParts(run: IRun, cfg: ISweepConfig, children: ReadonlyArray<IRun>): IRowParts {
  const counts = sweepCounts(children, cfg);
  const best = bestChild(children, cfg);
  const text = countsText(counts);
  const bestText = best ? `best ${cfg.primary_metric_name} ${formatValue(best.value)}` : '';
  const bestTitle = best
    ? `${best.run.id}: ${formatHyperparameters(hyperparameters(best.run), Object.keys(cfg.parameter_space ?? {}))}`
    : `no child has logged ${cfg.primary_metric_name} yet`;
  return {
    className: 'jp-train-sweep-row',
    // the row's own metric slot is narrow: the best value goes on the sweep's line
    metric: h('span', { class: 'jp-train-run-metric' }),
    extra: [
      h('div', { class: 'jp-train-sweep-info' },
        h('span', { class: 'jp-train-sweep-badge', title: `Hyperparameter sweep: ${cfg.sampling} sampling, ${cfg.primary_metric_goal} ${cfg.primary_metric_name}` }, 'sweep'),
        h('span', { class: 'jp-train-sweep-counts', testid: 'jp-train-sweep-counts' }, text),
        bestText ? h('span', { class: 'jp-train-sweep-best', title: bestTitle }, bestText) : null)
    ],
    title: `Sweep: ${text}${bestText ? `; ${bestText}` : ''}`,
    data: {
      sweep: 'true',
      children: String(counts.total),
      done: String(counts.done),
      stopped: String(counts.stopped)
    }
  };
}

export function childRowParts(run: IRun, names: ReadonlyArray<string>): IRowParts {
  const params = formatHyperparameters(hyperparameters(run), names);
  const reason = cancelReason(run);
  const stopped = isStopped(run);
  return {
    className: `jp-train-child-row${stopped ? ' jp-train-child-stopped' : ''}`,
    extra: [
      h('div', { class: 'jp-train-child-params', title: params }, params),
      stopped ? h('div', { class: 'jp-train-child-reason', title: reason }, reason) : null
    ].filter((e): e is HTMLDivElement => e !== null),
    title: stopped ? `Stopped: ${reason}` : '',
    data: stopped ? { stopped: 'true' } : {}
  };
}
