// Types of chart.js (the one chart source, shared by the notebook monitor and the labextension).
export type ChartPoint = [number, number] | [number, number, number | null];
export interface IChartSeries {
  label: string;
  points: ReadonlyArray<ChartPoint>;
  /** Palette index (default: the series' position), or a CSS colour. */
  color?: number | string;
  /** data-run-id of its line (a sweep's child). */
  id?: string;
  /** Extra classes of its line. */
  className?: string;
}
export interface IChartView {
  smoothing: number;
  log: boolean;
  x: 'step' | 'time';
  zoom: [number, number] | null;
  hidden: Set<string>;
  t0: number | null;
}
export interface IRenderOptions {
  title?: string;
  metric?: string;
  width?: number;
  height?: number;
  xLabel?: string;
  onChange?: (what: string) => void;
}
export interface IChartDef {
  metric: string;
  title?: string;
  series: IChartSeries[];
}
export interface IChartSection {
  id: string;
  title?: string;
  empty?: string;
  charts: IChartDef[];
}
export const PALETTE: string[];
export const CHART_FONT_PX: number;
export function seriesColor(i: number | string): string;
export function niceTicks(lo: number, hi: number, count?: number): { step: number; values: number[] };
export function stepTicks(lo: number, hi: number, count?: number): { step: number; values: number[] };
export function logTicks(lo: number, hi: number): number[];
export function formatTick(v: number, step: number): string;
export function formatNumber(v: number): string;
export function smooth<P extends ReadonlyArray<number>>(points: ReadonlyArray<P>, weight: number): Array<[number, number]>;
export function isSystemMetric(name: string): boolean;
export function metricTitle(name: string): string;
export function lineLabel(name: string, rank: number): string;
export function defaultView(): IChartView;
export function firstTs(series: ReadonlyArray<IChartSeries>): number | null;
export function xPoints(points: ReadonlyArray<ChartPoint>, view: IChartView, unit: { div: number }): Array<[number, number]>;
export function renderChart(series: ReadonlyArray<IChartSeries>, options?: IRenderOptions, view?: IChartView): HTMLElement;
export class ChartGroup {
  constructor(options?: { xLabel?: string; minWidth?: number; chartWidth?: number; chartHeight?: number; width?: number });
  readonly element: HTMLDivElement;
  readonly toolbar: HTMLDivElement;
  readonly body: HTMLDivElement;
  view: IChartView;
  setSections(sections: IChartSection[]): void;
  render(): void;
}
export function runSections(
  names: ReadonlyArray<string>,
  get: (name: string) => Array<[number, ReadonlyArray<ChartPoint>]>
): IChartSection[];
