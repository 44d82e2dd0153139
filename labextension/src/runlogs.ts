/**
 * The Logs tab of a run view: one buffer per log file (per rank, supervisor, prepare, ...), a
 * file picker, a search that highlights matches, "follow" that keeps the end in view until the
 * user scrolls up, and a download of the whole file.
 */

import { escapeHtml } from './chart';
import { button, h } from './dom';
import { LogBuffer, searchLines, sortLogNames } from './logs';

/** Lines drawn at most in the log view (the download has every line). */
const MAX_LOG_LINES = 20000;

export interface IRunLogsOptions {
  /** Whether the Logs tab is the one showing (only then is the text redrawn). */
  isShown: () => boolean;
  /** Save one file of the run (``logs/<name>``) through the browser. */
  download: (path: string) => Promise<void>;
}

export class RunLogs {
  /** Builds the toolbar and the log text into ``panel``. */
  constructor(
    panel: HTMLElement,
    private readonly options: IRunLogsOptions
  ) {
    this._select = h('select', { class: 'jp-train-log-select', testid: 'jp-train-log-select', title: 'Log file' });
    this._select.addEventListener('change', () => this.render(true));
    this._search = h('input', { type: 'search', class: 'jp-train-log-search', testid: 'jp-train-log-search', placeholder: 'Search the log' });
    this._search.addEventListener('input', () => this.render(true));
    this._follow = h('input', { type: 'checkbox', testid: 'jp-train-log-follow', checked: true });
    this._count = h('span', { class: 'jp-train-log-count' });
    this._pre = h('pre', { class: 'jp-train-log', testid: 'jp-train-log' });
    this._pre.addEventListener('scroll', () => {
      const atEnd = this._pre.scrollTop + this._pre.clientHeight >= this._pre.scrollHeight - 4;
      if (!atEnd && this._follow.checked && !this._autoScrolling) {
        this._follow.checked = false;
      }
    });
    panel.append(
      h('div', { class: 'jp-train-log-toolbar' },
        this._select,
        this._search,
        h('label', { class: 'jp-train-follow' }, this._follow, ' Follow'),
        button('Download', () => void this.download(), { testid: 'jp-train-log-download' }),
        this._count),
      this._pre
    );
  }

  /** Where to resume each file from, as the stream's ``logs`` query ("name:offset,..."). */
  get offsets(): string {
    return Array.from(this._buffers.entries()).map(([n, b]) => `${n}:${b.offset}`).join(',');
  }

  /** The buffer of one file, added (and offered in the picker) the first time it is named. */
  buffer(name: string): LogBuffer {
    let buf = this._buffers.get(name);
    if (!buf) {
      buf = new LogBuffer(MAX_LOG_LINES);
      this._buffers.set(name, buf);
      this.updateSelect();
    }
    return buf;
  }

  /** Text streamed in for one file: appended to the view when it is the one showing. */
  onLog(name: string, text: string, nextOffset: number): void {
    const buf = this.buffer(name);
    const lines = buf.append(text, nextOffset);
    if (name === this._select.value && this.options.isShown()) {
      if (this._search.value || buf.dropped) {
        this.render(false);
      } else if (lines.length) {
        this._pre.appendChild(document.createTextNode(lines.join('\n') + '\n'));
        this._updateCount();
        this._scroll();
      }
    }
  }

  /** Download the file showing. */
  async download(): Promise<void> {
    const name = this._select.value;
    if (!name) {
      return;
    }
    await this.options.download(`logs/${name}`);
  }

  /** Offer the files known, rank 0 first when nothing was picked yet. */
  updateSelect(): void {
    const names = sortLogNames(Array.from(this._buffers.keys()));
    const current = this._select.value;
    if (names.join('\n') === Array.from(this._select.options).map(o => o.value).join('\n')) {
      return;
    }
    this._select.replaceChildren(...names.map(n => h('option', { value: n }, n)));
    const preferred = current || (names.includes('rank_0.txt') ? 'rank_0.txt' : names[0]);
    if (preferred) {
      this._select.value = preferred;
    }
    if (!current && this.options.isShown()) {
      this.render(true);
    }
  }

  /** Draw the file showing again: every line, or the ones matching the search. */
  render(reset: boolean): void {
    const buf = this._buffers.get(this._select.value);
    if (!buf) {
      this._pre.textContent = this._buffers.size ? '' : 'No logs yet.';
      return;
    }
    const query = this._search.value;
    const lines = buf.lines;
    if (query) {
      const hits = searchLines(lines, query);
      const re = new RegExp(query.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'gi');
      this._pre.innerHTML = hits
        .map(i => escapeHtml(lines[i]).replace(re, m => `<mark>${m}</mark>`))
        .join('\n');
      this._count.textContent = `${hits.length} of ${lines.length} lines match`;
    } else {
      const head = buf.dropped ? `… ${buf.dropped} earlier lines: download the log for them\n` : '';
      this._pre.textContent = head + lines.join('\n') + (lines.length ? '\n' : '');
      this._updateCount();
    }
    if (reset || this._follow.checked) {
      this._scroll();
    }
  }

  private _updateCount(): void {
    const buf = this._buffers.get(this._select.value);
    this._count.textContent = buf ? `${buf.lines.length + buf.dropped} lines` : '';
  }

  private _scroll(): void {
    if (this._follow.checked) {
      this._autoScrolling = true;
      this._pre.scrollTop = this._pre.scrollHeight;
      window.requestAnimationFrame(() => (this._autoScrolling = false));
    }
  }

  private _buffers = new Map<string, LogBuffer>();
  private _autoScrolling = false;
  private _select: HTMLSelectElement;
  private _search: HTMLInputElement;
  private _follow: HTMLInputElement;
  private _count: HTMLSpanElement;
  private _pre: HTMLPreElement;
}
