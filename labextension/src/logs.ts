/**
 * Log text of a run as the panel holds it: buffered as it streams, searched, and its files
 * ordered for the tabs. Pure: jest tests it directly.
 */

/**
 * Log text held for one log file, appended chunk by chunk as it streams, with its lines split
 * once. Long logs keep only the last ``maxLines`` lines in view (the download has them all).
 */
export class LogBuffer {
  constructor(readonly maxLines = 20000) {}

  get lines(): ReadonlyArray<string> {
    return this._lines;
  }

  /** Lines dropped from the front to stay under maxLines. */
  get dropped(): number {
    return this._dropped;
  }

  /** Bytes offset to resume from. */
  offset = 0;

  append(text: string, nextOffset?: number): string[] {
    const parts = (this._partial + text).split('\n');
    this._partial = parts.pop() ?? '';
    this._lines.push(...parts);
    if (this._lines.length > this.maxLines) {
      const drop = this._lines.length - this.maxLines;
      this._lines.splice(0, drop);
      this._dropped += drop;
    }
    if (nextOffset !== undefined) {
      this.offset = nextOffset;
    }
    return parts;
  }

  private _lines: string[] = [];
  private _partial = '';
  private _dropped = 0;
}

/** Indices of the lines containing ``query`` (case-insensitive); all lines for ''. */
export function searchLines(lines: ReadonlyArray<string>, query: string): number[] {
  const q = query.toLowerCase();
  const out: number[] = [];
  lines.forEach((line, i) => {
    if (!q || line.toLowerCase().includes(q)) {
      out.push(i);
    }
  });
  return out;
}

/**
 * Log names ordered for the tabs: rank logs by rank number, then the rest (supervisor,
 * prepare, per-node, user files) by name.
 */
export function sortLogNames(names: ReadonlyArray<string>): string[] {
  const rank = (n: string): number => {
    const m = /^rank_(\d+)\.txt$/.exec(n);
    return m ? Number(m[1]) : Infinity;
  };
  return [...names].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}
