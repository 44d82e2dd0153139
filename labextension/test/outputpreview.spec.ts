import { parseDelimited, PREVIEW_MAX_BYTES, previewKind } from '../src/outputpreview';

describe('previewKind', () => {
  it('previews images, small tables and small text; big or binary files are only downloaded', () => {
    expect(previewKind('outputs/images/loss.png', 2000)).toBe('image');
    expect(previewKind('outputs/metrics.csv', 100)).toBe('table');
    expect(previewKind('outputs/scores.tsv', 100)).toBe('table');
    expect(previewKind('outputs/summary.txt', 100)).toBe('text');
    expect(previewKind('outputs/README', 100)).toBe('text');
    expect(previewKind('outputs/summary.txt', PREVIEW_MAX_BYTES + 1)).toBe('none');
    expect(previewKind('outputs/model.pt', 100)).toBe('none');
    expect(previewKind('outputs/x.csv', undefined)).toBe('none');
  });
});

describe('parseDelimited', () => {
  it('reads quoted fields with separators, quotes and newlines inside', () => {
    const { rows, cut } = parseDelimited('a,b,c\n1,"x, y","say ""hi"""\r\n2,"two\nlines",\n');
    expect(cut).toBe(false);
    expect(rows).toEqual([
      ['a', 'b', 'c'],
      ['1', 'x, y', 'say "hi"'],
      ['2', 'two\nlines', '']
    ]);
  });

  it('stops after the rows asked for and says so', () => {
    const text = Array.from({ length: 100 }, (_, i) => `${i}\t${i * i}`).join('\n');
    const { rows, cut } = parseDelimited(text, '\t', 10);
    expect(cut).toBe(true);
    expect(rows.length).toBe(10);
    expect(rows[9]).toEqual(['9', '81']);
    expect(parseDelimited('only,header').rows).toEqual([['only', 'header']]);
  });
});
