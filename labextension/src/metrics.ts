/**
 * Metric points of runs and what charts are drawn from: the downsampled series of the REST
 * contract, the history of one run (that view plus the points streamed after it), the metrics
 * runs have in common, and axis bounds and ticks. Pure: jest tests it directly.
 */

export interface IMetricPoint {
  id: number;
  rank: number;
  name: string;
  step: number | null;
  value: number | string;
  ts?: number | null;
}

/** Points per series of the downsampled views charts are drawn from. */
export const CHART_POINTS = 1000;

/** One series of GET /runs/{id}/metrics/series: downsampled on the server for a chart. */
export interface IMetricSeries {
  name: string;
  rank: number;
  count: number;
  numeric: number;
  downsampled: boolean;
  /** [step, value], or [step, value, time] when asked with times=1 (time null where none). */
  points: Array<[number, number] | [number, number, number | null]>;
  last: { value: number | string; step: number | null } | null;
}

/** A run's series as of ``cursor``: stream from the cursor for the points after it. */
export interface IMetricSeriesView {
  series: IMetricSeries[];
  cursor: number;
}

/** One line of a chart: (x, y) points in x order. */
export interface ISeries {
  label: string;
  points: Array<[number, number]>;
}

/**
 * Metric points of one run by metric name and rank: a downsampled view loaded from the server
 * (``load``, the base of each series) and the points that stream in after it (``add``, by
 * cursor). Text values (and nan/inf, which the server sends as text) are kept for the table but
 * left out of charts.
 */
export class MetricHistory {
  get cursor(): number {
    return this._cursor;
  }

  /** Points streamed in since the last ``load`` (a view reloads when they pile up). */
  get streamed(): number {
    return this._streamed;
  }

  /**
   * Take a downsampled view as the base of every series it has. Streamed points it already
   * covers (at or before its cursor) are dropped; later ones stay on top of it.
   */
  load(view: IMetricSeriesView): void {
    for (const s of view.series) {
      const byRank = this._entry(s.name);
      const e = byRank.get(s.rank) ?? { base: [], baseNumeric: 0, baseCount: 0, last: null, points: [] };
      e.base = s.points;
      e.baseNumeric = s.numeric;
      e.baseCount = s.count;
      e.last = s.last;
      e.points = e.points.filter(p => p.id > view.cursor);
      byRank.set(s.rank, e);
    }
    this._streamed = 0;
    for (const byRank of this._byName.values()) {
      for (const e of byRank.values()) {
        this._streamed += e.points.length;
      }
    }
    if (view.cursor > this._cursor) {
      this._cursor = view.cursor;
    }
  }

  /** Add points; ones at or before the cursor already held are ignored (a resumed stream). */
  add(items: ReadonlyArray<IMetricPoint>, cursor?: number): number {
    let added = 0;
    for (const p of items) {
      if (p.id <= this._cursor) {
        continue;
      }
      this._cursor = p.id;
      const byRank = this._entry(p.name);
      const e = byRank.get(p.rank) ?? { base: [], baseNumeric: 0, baseCount: 0, last: null, points: [] };
      e.points.push(p);
      byRank.set(p.rank, e);
      added++;
    }
    this._streamed += added;
    if (cursor !== undefined && cursor > this._cursor) {
      this._cursor = cursor;
    }
    return added;
  }

  /** Metric names in the order they were first logged. */
  get names(): string[] {
    return Array.from(this._byName.keys());
  }

  ranks(name: string): number[] {
    return Array.from(this._byName.get(name)?.keys() ?? []).sort((a, b) => a - b);
  }

  /** Names with at least two numeric points on some rank: the ones worth a chart. */
  get chartable(): string[] {
    return this.names.filter(n =>
      this.ranks(n).some(r => {
        const e = this._byName.get(n)!.get(r)!;
        return e.baseNumeric + e.points.filter(isNumber).length >= 2;
      })
    );
  }

  /** Latest value of each metric on a rank (default rank 0, else the lowest rank). */
  latest(rank?: number): Array<{ name: string; value: number | string; step: number | null }> {
    const out: Array<{ name: string; value: number | string; step: number | null }> = [];
    for (const [name, byRank] of this._byName) {
      const r = rank ?? (byRank.has(0) ? 0 : Math.min(...byRank.keys()));
      const e = byRank.get(r);
      const last = e?.points.length ? e.points[e.points.length - 1] : e?.last;
      if (last) {
        out.push({ name, value: last.value, step: last.step });
      }
    }
    return out;
  }

  /**
   * Numeric points of one metric on one rank, in x order: the loaded view's, then the streamed
   * ones; x is the step, else the point's position in the series.
   */
  series(name: string, rank = 0, label?: string): ISeries {
    const e = this._byName.get(name)?.get(rank);
    const points: Array<[number, number]> = e ? e.base.map(p => [p[0], p[1]] as [number, number]) : [];
    let sorted = true;
    e?.points.forEach((p, i) => {
      if (isNumber(p)) {
        const x = p.step ?? e.baseCount + i;
        sorted = sorted && (!points.length || points[points.length - 1][0] <= x);
        points.push([x, p.value as number]);
      }
    });
    if (!sorted) {
      points.sort((a, b) => a[0] - b[0]);
    }
    return { label: label ?? (rank === 0 ? name : `${name} [rank ${rank}]`), points };
  }

  /**
   * Like ``series`` with each point's timestamp as a third element where it is known (streamed
   * points carry ``ts``, the server's view sends it when asked with times=1): what a wall-time
   * axis needs.
   */
  timedSeries(name: string, rank = 0): Array<[number, number] | [number, number, number | null]> {
    const e = this._byName.get(name)?.get(rank);
    const points: Array<[number, number] | [number, number, number | null]> = e ? e.base.slice() : [];
    e?.points.forEach((p, i) => {
      if (isNumber(p)) {
        points.push([p.step ?? e.baseCount + i, p.value as number, p.ts ?? null]);
      }
    });
    return points.sort((a, b) => a[0] - b[0]);
  }

  private _entry(name: string): Map<number, ISeriesEntry> {
    let byRank = this._byName.get(name);
    if (!byRank) {
      byRank = new Map();
      this._byName.set(name, byRank);
    }
    return byRank;
  }

  private _cursor = 0;
  private _streamed = 0;
  private _byName = new Map<string, Map<number, ISeriesEntry>>();
}

interface ISeriesEntry {
  base: Array<[number, number] | [number, number, number | null]>;
  baseNumeric: number;
  baseCount: number;
  last: { value: number | string; step: number | null } | null;
  points: IMetricPoint[];
}

function isNumber(p: IMetricPoint): boolean {
  return typeof p.value === 'number' && isFinite(p.value);
}

/** Names charted in common when comparing runs: those every run logged, else any run logged. */
export function comparableMetrics(histories: ReadonlyArray<MetricHistory>): string[] {
  if (!histories.length) {
    return [];
  }
  const lists = histories.map(h => h.chartable);
  const common = lists[0].filter(n => lists.every(l => l.includes(n)));
  if (common.length) {
    return common;
  }
  return Array.from(new Set(lists.flat()));
}

/** Axis bounds with a little padding; a flat line gets a band around its value. */
export function extent(series: ReadonlyArray<ISeries>): {
  x: [number, number];
  y: [number, number];
} | null {
  let x0 = Infinity;
  let x1 = -Infinity;
  let y0 = Infinity;
  let y1 = -Infinity;
  for (const s of series) {
    for (const [x, y] of s.points) {
      x0 = Math.min(x0, x);
      x1 = Math.max(x1, x);
      y0 = Math.min(y0, y);
      y1 = Math.max(y1, y);
    }
  }
  if (x0 === Infinity) {
    return null;
  }
  if (x0 === x1) {
    x0 -= 1;
    x1 += 1;
  }
  if (y0 === y1) {
    const pad = Math.abs(y0) * 0.1 || 1;
    y0 -= pad;
    y1 += pad;
  } else {
    const pad = (y1 - y0) * 0.05;
    y0 -= pad;
    y1 += pad;
  }
  return { x: [x0, x1], y: [y0, y1] };
}

/** About ``count`` round tick values covering [lo, hi]. */
export function ticks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo) || !isFinite(lo) || !isFinite(hi)) {
    return [lo];
  }
  const raw = (hi - lo) / Math.max(1, count);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map(m => m * mag).find(s => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Number(v.toPrecision(12)));
  }
  return out;
}
