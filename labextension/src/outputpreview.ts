/**
 * Previews of a run's output files in its Outputs tab: images as images, delimited text as a
 * small table, other text as its first lines; what a preview is, decided from the name and the
 * size (big files are only downloaded). ``previewKind`` and ``parseDelimited`` are pure.
 */

import { TrainApi } from './api';
import { h } from './dom';

/** Files up to this size get a text or table preview (the whole file is fetched). */
export const PREVIEW_MAX_BYTES = 512 * 1024;
export const PREVIEW_LINES = 200;
export const TABLE_ROWS = 50;
export const TABLE_COLUMNS = 30;

export type PreviewKind = 'image' | 'table' | 'text' | 'none';

const IMAGE = /\.(png|jpe?g|gif|svg|webp|bmp)$/i;
const TABLE = /\.(csv|tsv)$/i;
const TEXT = /\.(txt|log|json|jsonl|ya?ml|md|py|cfg|ini|toml|xml|html?|sh|out|err)$/i;

export function previewKind(name: string, size: number | undefined): PreviewKind {
  if (IMAGE.test(name)) {
    return size !== undefined && size > 20 * 1024 * 1024 ? 'none' : 'image';
  }
  if (size === undefined || size > PREVIEW_MAX_BYTES) {
    return 'none';
  }
  if (TABLE.test(name)) {
    return 'table';
  }
  return TEXT.test(name) || !/\.[A-Za-z0-9]+$/.test(name.split('/').pop() ?? '') ? 'text' : 'none';
}

/**
 * Rows of CSV (or TSV) text: quoted fields with "" for a quote and separators or newlines
 * inside, at most ``maxRows`` rows; ``cut`` when there were more.
 */
export function parseDelimited(text: string, sep = ',', maxRows = TABLE_ROWS): { rows: string[][]; cut: boolean } {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  let i = 0;
  const endRow = () => {
    row.push(field);
    field = '';
    if (!(row.length === 1 && row[0] === '')) {
      rows.push(row);
    }
    row = [];
  };
  while (i < text.length) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i += 2;
        continue;
      }
      if (c === '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c === '"' && field === '') {
      quoted = true;
    } else if (c === sep) {
      row.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') {
        i++;
      }
      endRow();
      if (rows.length > maxRows) {
        return { rows: rows.slice(0, maxRows), cut: true };
      }
    } else {
      field += c;
    }
    i++;
  }
  if (field !== '' || row.length) {
    endRow();
  }
  return rows.length > maxRows ? { rows: rows.slice(0, maxRows), cut: true } : { rows, cut: false };
}

/** The preview of one output file, built when asked for (a click on Preview). */
export async function renderPreview(api: TrainApi, runId: string, name: string, size: number | undefined): Promise<HTMLElement> {
  const kind = previewKind(name, size);
  const box = h('div', { class: 'jp-train-preview', testid: 'jp-train-preview', 'data-kind': kind, 'data-file': name });
  if (kind === 'image') {
    box.append(h('img', { src: api.fileUrl(runId, name), alt: name.split('/').pop() ?? name, class: 'jp-train-preview-image' }));
    return box;
  }
  if (kind === 'none') {
    box.append(h('p', { class: 'jp-train-message' }, 'No preview for this file (too big or not text): download it.'));
    return box;
  }
  const text = await (await api.fetch('GET', ['runs', runId, 'files', ...name.split('/')])).text();
  if (kind === 'table') {
    const { rows, cut } = parseDelimited(text, /\.tsv$/i.test(name) ? '\t' : ',');
    const [head, ...body] = rows;
    const cols = Math.min(TABLE_COLUMNS, Math.max(0, ...rows.map(r => r.length)));
    box.append(
      h('table', { class: 'jp-train-kv jp-train-preview-table' },
        h('tr', {}, ...(head ?? []).slice(0, cols).map(c => h('th', {}, c))),
        ...body.map(r => h('tr', {}, ...r.slice(0, cols).map(c => h('td', {}, c))))),
      cut ? h('p', { class: 'jp-train-meta' }, `The first ${TABLE_ROWS - 1} rows; download the file for the rest.`) : ''
    );
    return box;
  }
  const lines = text.split('\n');
  box.append(h('pre', { class: 'jp-train-code jp-train-preview-text' }, lines.slice(0, PREVIEW_LINES).join('\n')));
  if (lines.length > PREVIEW_LINES) {
    box.append(h('p', { class: 'jp-train-meta' }, `The first ${PREVIEW_LINES} of ${lines.length} lines.`));
  }
  return box;
}
