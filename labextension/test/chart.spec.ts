/**
 * @jest-environment jsdom
 *
 * The shared chart (kernel_lib/widgets/chart.js): ticks, tick labels, smoothing, metric titles,
 * and the DOM it draws (both axes, legend toggle, hover read-out, log scale, time axis, zoom,
 * empty state, System section).
 */
import {
  ChartGroup,
  defaultView,
  formatNumber,
  formatTick,
  logTicks,
  metricTitle,
  niceTicks,
  renderChart,
  runSections,
  smooth,
  stepTicks
} from '../../kernel_lib/widgets/chart.js';
import { sinceStart } from '../src/chart';
import { renderChart as panelChart } from '../src/chart';

const line = (n: number, f: (i: number) => number, t0 = 1000): Array<[number, number, number]> =>
  Array.from({ length: n }, (_, i) => [i, f(i), t0 + i * 2]);

function texts(fig: Element, axis: string): string[] {
  return Array.from(fig.querySelectorAll(`text.jp-train-chart-tick[data-axis="${axis}"]`)).map(t => t.textContent ?? '');
}

function mouse(target: Element, type: string, clientX: number): void {
  target.dispatchEvent(new MouseEvent(type, { clientX, clientY: 50, bubbles: true }));
}

describe('ticks and labels', () => {
  it('picks round ticks', () => {
    expect(niceTicks(0, 1, 5).values).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(0.00061, 0.00079, 4).values[0]).toBeCloseTo(0.00065);
    expect(stepTicks(0, 7, 5).values.every(Number.isInteger)).toBe(true);
    expect(logTicks(0.001, 10)).toEqual([0.001, 0.01, 0.1, 1, 10]);
  });

  it('formats tick labels compactly and readably', () => {
    expect(formatTick(0.00073, 0.00001)).toBe('7.3e-4');
    expect(formatTick(1200, 200)).toBe('1.2k');
    expect(formatTick(28.73005, 0.00001)).toBe('28.73005'); // large values, tiny spread: no 2.873e1
    expect(formatTick(0.005, 0.0005)).toBe('5e-3');
    expect(formatTick(2500000, 500000)).toBe('2.5M');
    expect(formatTick(0.25, 0.05)).toBe('0.25');
    expect(formatTick(0.3, 0.1)).toBe('0.3');
    expect(formatTick(40, 10)).toBe('40');
    expect(formatTick(0, 0.1)).toBe('0');
    expect(formatNumber(0.0007263)).toBe('7.26e-4');
    expect(formatNumber(0.5)).toBe('0.5');
  });

  it('smooths like TensorBoard (debiased EMA)', () => {
    const pts: Array<[number, number]> = [[0, 1], [1, 1], [2, 1]];
    expect(smooth(pts, 0.9).map(p => p[1])).toEqual([1, 1, 1].map(v => expect.closeTo(v, 9)));
    const s = smooth([[0, 0], [1, 10]], 0.5);
    expect(s[0][1]).toBeCloseTo(0);
    expect(s[1][1]).toBeCloseTo(10 * 0.5 / 0.75);
    expect(smooth(pts, 0)).toBe(pts);
  });

  it('titles system metrics', () => {
    expect(metricTitle('system/cpu_percent')).toBe('CPU utilization (%)');
    expect(metricTitle('system/cpu_utilization_percent')).toBe('CPU utilization (%)');
    expect(metricTitle('system/gpu_0_memory_mb')).toBe('GPU 0 memory (MB)');
    expect(metricTitle('system/gpu_1_percent')).toBe('GPU 1 utilization (%)');
    expect(metricTitle('system/cpu_utilization_percentage')).toBe('CPU utilization (%)');
    expect(metricTitle('system/system_memory_usage_megabytes')).toBe('System memory usage (MB)');
    expect(metricTitle('system/disk_read_megabytes_per_second')).toBe('Disk read (MB/s)');
    expect(metricTitle('system/gpu_0_memory_mb')).toBe('GPU 0 memory (MB)');
    expect(metricTitle('loss')).toBe('loss');
  });
});

describe('renderChart', () => {
  it('draws ticks and gridlines on both axes, sizing the margin from the widest label', () => {
    const fig = renderChart([{ label: 'loss', points: line(50, i => 0.0007 + i * 1e-6) }], { metric: 'loss' });
    expect(fig.dataset.testid).toBe('jp-train-chart');
    expect(fig.dataset.points).toBe('50');
    const ys = texts(fig, 'y');
    expect(ys.length).toBeGreaterThanOrEqual(3);
    expect(ys.every(t => /^\d(\.\d+)?e-4$/.test(t))).toBe(true);
    expect(texts(fig, 'x').length).toBeGreaterThanOrEqual(3);
    expect(fig.querySelectorAll('.jp-train-chart-grid line').length).toBe(ys.length + texts(fig, 'x').length);
    expect(fig.querySelector('.jp-train-chart-axis-label')!.textContent).toBe('step');
  });

  it('says it waits for the first point', () => {
    const fig = renderChart([{ label: 'loss', points: [] }], { metric: 'loss' });
    expect(fig.textContent).toContain('Waiting for the first point…');
  });

  it('toggles a line from the legend', () => {
    const fig = panelChart([{ label: 'rank 0', points: line(5, i => i) }, { label: 'rank 1', points: line(5, i => 2 * i) }], { title: 'loss' });
    document.body.replaceChildren(fig);
    expect(document.querySelectorAll('path.jp-train-series').length).toBe(2);
    (document.querySelector('[data-series="rank 1"].jp-train-chart-legend-item') as HTMLElement).click();
    expect(document.querySelectorAll('path.jp-train-series').length).toBe(1);
    expect(document.querySelector('[data-series="rank 1"].jp-train-chart-legend-item')!.getAttribute('aria-pressed')).toBe('false');
  });

  it('reads out every visible line at the nearest step, raw beside smoothed', () => {
    const view = defaultView();
    view.smoothing = 0.5;
    const fig = renderChart([{ label: 'a', points: line(11, i => i) }, { label: 'b', points: line(11, i => 10 - i) }], { metric: 'm', width: 400 }, view);
    document.body.replaceChildren(fig);
    const svg = fig.querySelector('svg')!;
    svg.getBoundingClientRect = () => ({ left: 0, top: 0, width: 400, height: 220, right: 400, bottom: 220, x: 0, y: 0, toJSON: () => '' });
    expect(fig.querySelectorAll('path.jp-train-series-raw').length).toBe(2);
    mouse(svg, 'mousemove', 399);
    const text = fig.querySelector('[data-testid=jp-train-chart-readout]')!.textContent!;
    expect(text).toContain('step 10');
    expect(text).toMatch(/a: [\d.]+ \(raw 10\)/);
    expect(text).toMatch(/b: [\d.]+ \(raw 0\)/);
  });

  it('draws log y only when every value is positive', () => {
    const view = defaultView();
    view.log = true;
    const ok = renderChart([{ label: 'loss', points: line(20, i => 10 ** -i / 3) }], { metric: 'loss' }, view);
    expect(ok.dataset.log).toBe('true');
    expect(texts(ok, 'y').some(t => t.includes('e-'))).toBe(true);
    const no = renderChart([{ label: 'x', points: line(20, i => i - 5) }], { metric: 'x' }, view);
    expect(no.dataset.log).toBe('false');
    expect(no.dataset.logRefused).toBeTruthy();
  });

  it('puts wall time on x from the timestamps', () => {
    const view = defaultView();
    view.x = 'time';
    const fig = renderChart([{ label: 'loss', points: line(100, i => i) }], { metric: 'loss' }, view);
    expect(fig.querySelector('.jp-train-chart-axis-label')!.textContent).toBe('wall time (min)');
    expect(Math.max(...texts(fig, 'x').map(Number))).toBeLessThanOrEqual(3.3);
  });

  it('zooms x by drag and resets by double-click', () => {
    const fig0 = panelChart([{ label: 'loss', points: line(101, i => i) }], { title: 'loss', width: 400 });
    document.body.replaceChildren(fig0);
    const svg = () => {
      const s = document.querySelector('svg')!;
      s.getBoundingClientRect = () => ({ left: 0, top: 0, width: 400, height: 220, right: 400, bottom: 220, x: 0, y: 0, toJSON: () => '' });
      return s;
    };
    const before = texts(document.body, 'x');
    mouse(svg(), 'mousedown', 100);
    mouse(svg(), 'mousemove', 200);
    mouse(svg(), 'mouseup', 200);
    const after = texts(document.body, 'x');
    expect(after).not.toEqual(before);
    expect(Math.max(...after.map(Number))).toBeLessThan(60);
    svg().dispatchEvent(new MouseEvent('dblclick', { bubbles: true }));
    expect(texts(document.body, 'x')).toEqual(before);
  });
});

describe('ChartGroup', () => {
  it('draws small multiples with a System section, per-rank and per-node lines, one toolbar', () => {
    const data: Record<string, Array<[number, Array<[number, number, number]>]>> = {
      loss: [[0, line(10, i => 1 / (i + 1))], [1, line(10, i => 1.1 / (i + 1))]],
      accuracy: [[0, line(10, i => i / 10)]],
      'system/cpu_percent': [[0, line(10, i => 50 + i)], [1, line(10, i => 40 + i)]]
    };
    const group = new ChartGroup();
    document.body.replaceChildren(group.element);
    group.setSections(runSections(Object.keys(data), n => data[n]));
    const charts = (id: string) => Array.from(document.querySelectorAll(`[data-section=${id}] [data-testid=jp-train-chart]`)) as HTMLElement[];
    expect(charts('metrics').map(c => c.dataset.metric)).toEqual(['loss', 'accuracy']);
    expect(charts('system').map(c => c.querySelector('figcaption')!.textContent)).toEqual(['CPU utilization (%)']);
    expect(document.querySelector('[data-section=system] h3')!.textContent).toBe('System');
    const legend = (c: HTMLElement) => Array.from(c.querySelectorAll('.jp-train-chart-legend-item')).map(b => b.textContent);
    expect(legend(charts('metrics')[0])).toEqual(['rank 0', 'rank 1']);
    expect(legend(charts('system')[0])).toEqual(['node 0', 'node 1']);
    expect(document.querySelectorAll('[data-testid=jp-train-chart-toolbar]').length).toBe(1);
    const slider = document.querySelector('[data-testid=jp-train-chart-smoothing]') as HTMLInputElement;
    slider.value = '0.6';
    slider.dispatchEvent(new Event('input'));
    expect(document.querySelectorAll('path[data-smoothed=true]').length).toBe(5);
    const log = document.querySelector('[data-testid=jp-train-chart-log]') as HTMLInputElement;
    log.checked = true;
    log.dispatchEvent(new Event('change'));
    expect(document.querySelector('[data-testid=jp-train-chart-note]')!.textContent).toContain('accuracy');
  });
});

describe('compare over wall time', () => {
  it('starts each run at 0 and keeps points without a time as they are', () => {
    expect(sinceStart([[0, 1, 1000.5], [1, 0.5, 1002], [2, 0.25, null]])).toEqual([[0, 1, 0], [1, 0.5, 1.5], [2, 0.25, null]]);
    expect(sinceStart([[0, 1], [1, 2]])).toEqual([[0, 1], [1, 2]]);
    expect(sinceStart([])).toEqual([]);
  });
});
