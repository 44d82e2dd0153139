/**
 * A small SVG line chart for metric series (no charting dependency): axes with round ticks,
 * one line per series in theme-aware colours, a legend, and a hover read-out of the nearest
 * step. Colours come from CSS classes (.jp-train-series-N), so light and dark themes apply.
 */

import { el } from './dom';
import { formatValue } from './format';
import { extent, ISeries, ticks } from './metrics';

const PALETTE_SIZE = 8;

export interface IChartOptions {
  title: string;
  width?: number;
  height?: number;
  xLabel?: string;
}

/**
 * Render ``series`` into a new element: a figure with a title, the SVG and a legend.
 * data-testid="jp-train-chart", data-metric=title, data-series=count, data-points=total.
 */
export function renderChart(series: ReadonlyArray<ISeries>, options: IChartOptions): HTMLElement {
  const width = options.width ?? 420;
  const height = options.height ?? 220;
  const m = { top: 10, right: 14, bottom: 28, left: 56 };
  const figure = document.createElement('figure');
  figure.className = 'jp-train-chart';
  figure.dataset.testid = 'jp-train-chart';
  figure.dataset.metric = options.title;
  figure.dataset.series = String(series.length);
  figure.dataset.points = String(series.reduce((n, s) => n + s.points.length, 0));
  const caption = document.createElement('figcaption');
  caption.className = 'jp-train-chart-title';
  caption.textContent = options.title;
  figure.appendChild(caption);

  const box = extent(series);
  const svg = el('svg', {
    viewBox: `0 0 ${width} ${height}`,
    width: '100%',
    preserveAspectRatio: 'xMidYMid meet',
    role: 'img',
    'aria-label': `${options.title} chart`
  });
  figure.appendChild(svg);
  if (!box) {
    const t = el('text', { x: width / 2, y: height / 2, 'text-anchor': 'middle', class: 'jp-train-chart-empty' }, svg);
    t.textContent = 'No numeric points yet';
    return figure;
  }
  const pw = width - m.left - m.right;
  const ph = height - m.top - m.bottom;
  const sx = (x: number) => m.left + ((x - box.x[0]) / (box.x[1] - box.x[0])) * pw;
  const sy = (y: number) => m.top + ph - ((y - box.y[0]) / (box.y[1] - box.y[0])) * ph;

  const grid = el('g', { class: 'jp-train-chart-grid' }, svg);
  for (const v of ticks(box.y[0], box.y[1], 4)) {
    if (v < box.y[0] || v > box.y[1]) {
      continue;
    }
    el('line', { x1: m.left, x2: m.left + pw, y1: sy(v), y2: sy(v) }, grid);
    const label = el('text', { x: m.left - 6, y: sy(v) + 3, 'text-anchor': 'end', class: 'jp-train-chart-tick' }, svg);
    label.textContent = formatValue(v);
  }
  const xTicks = ticks(box.x[0], box.x[1], 5).filter(
    v => v >= box.x[0] && v <= box.x[1] && (box.x[1] - box.x[0] > 5 ? Number.isInteger(v) : true)
  );
  for (const v of xTicks) {
    const label = el('text', { x: sx(v), y: m.top + ph + 16, 'text-anchor': 'middle', class: 'jp-train-chart-tick' }, svg);
    label.textContent = formatValue(v);
  }
  el('line', { x1: m.left, x2: m.left + pw, y1: m.top + ph, y2: m.top + ph, class: 'jp-train-chart-axis' }, svg);
  el('line', { x1: m.left, x2: m.left, y1: m.top, y2: m.top + ph, class: 'jp-train-chart-axis' }, svg);
  if (options.xLabel) {
    const xl = el('text', { x: m.left + pw, y: height - 2, 'text-anchor': 'end', class: 'jp-train-chart-tick' }, svg);
    xl.textContent = options.xLabel;
  }

  series.forEach((s, i) => {
    const cls = `jp-train-series jp-train-series-${i % PALETTE_SIZE}`;
    if (s.points.length === 1) {
      const [x, y] = s.points[0];
      el('circle', { cx: sx(x), cy: sy(y), r: 3, class: cls }, svg);
    } else if (s.points.length > 1) {
      const d = s.points.map(([x, y], j) => `${j ? 'L' : 'M'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join('');
      el('path', { d, class: cls, fill: 'none' }, svg);
    }
  });

  // Hover: a vertical rule at the nearest x and the series' values there.
  const rule = el('line', { y1: m.top, y2: m.top + ph, class: 'jp-train-chart-rule', visibility: 'hidden' }, svg);
  const readout = document.createElement('div');
  readout.className = 'jp-train-chart-readout';
  readout.hidden = true;
  figure.appendChild(readout);
  const xs = Array.from(new Set(series.flatMap(s => s.points.map(p => p[0])))).sort((a, b) => a - b);
  svg.addEventListener('mousemove', (ev: MouseEvent) => {
    const rect = svg.getBoundingClientRect();
    if (!rect.width) {
      return;
    }
    const px = ((ev.clientX - rect.left) / rect.width) * width;
    const x = box.x[0] + ((px - m.left) / pw) * (box.x[1] - box.x[0]);
    let best = xs[0];
    for (const v of xs) {
      if (Math.abs(v - x) < Math.abs(best - x)) {
        best = v;
      }
    }
    rule.setAttribute('x1', String(sx(best)));
    rule.setAttribute('x2', String(sx(best)));
    rule.setAttribute('visibility', 'visible');
    const parts = series
      .map((s, i) => {
        const p = s.points.find(q => q[0] === best);
        return p ? `<span class="jp-train-series-key jp-train-series-${i % PALETTE_SIZE}"></span>${escapeHtml(s.label)}: ${formatValue(p[1])}` : '';
      })
      .filter(Boolean);
    readout.innerHTML = `step ${formatValue(best)} · ${parts.join(' · ')}`;
    readout.hidden = false;
  });
  svg.addEventListener('mouseleave', () => {
    rule.setAttribute('visibility', 'hidden');
    readout.hidden = true;
  });

  if (series.length > 1 || (series[0] && series[0].label !== options.title)) {
    const legend = document.createElement('div');
    legend.className = 'jp-train-chart-legend';
    series.forEach((s, i) => {
      const item = document.createElement('span');
      item.className = 'jp-train-chart-legend-item';
      const key = document.createElement('span');
      key.className = `jp-train-series-key jp-train-series-${i % PALETTE_SIZE}`;
      item.append(key, document.createTextNode(s.label));
      legend.appendChild(item);
    });
    figure.appendChild(legend);
  }
  return figure;
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}
