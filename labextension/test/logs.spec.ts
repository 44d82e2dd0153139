import { LogBuffer, searchLines, sortLogNames } from '../src/logs';

describe('LogBuffer', () => {
  it('joins lines split across chunks and holds back the unfinished one', () => {
    const b = new LogBuffer();
    expect(b.append('epoch 1\nepo')).toEqual(['epoch 1']);
    expect(b.lines).toEqual(['epoch 1']);
    expect(b.append('ch 2\n')).toEqual(['epoch 2']);
    expect(b.append('no newline yet')).toEqual([]);
    expect(b.lines).toEqual(['epoch 1', 'epoch 2']);
    expect(b.append('\n\n')).toEqual(['no newline yet', '']);
    expect(b.lines).toEqual(['epoch 1', 'epoch 2', 'no newline yet', '']);
  });

  it('keeps only the last maxLines lines and counts what it dropped', () => {
    const b = new LogBuffer(3);
    b.append('1\n2\n');
    expect(b.dropped).toBe(0);
    b.append('3\n4\n5\n');
    expect(b.lines).toEqual(['3', '4', '5']);
    expect(b.dropped).toBe(2);
    b.append('6\n');
    expect(b.lines).toEqual(['4', '5', '6']);
    expect(b.dropped).toBe(3);
  });

  it('tracks the offset to resume from', () => {
    const b = new LogBuffer();
    expect(b.offset).toBe(0);
    b.append('abc\n', 4);
    expect(b.offset).toBe(4);
    b.append('de');
    expect(b.offset).toBe(4);
    b.append('f\n', 7);
    expect(b.offset).toBe(7);
  });
});

describe('searchLines', () => {
  const lines = ['Epoch 1 loss=0.9', 'WARNING: slow', 'epoch 2 loss=0.5', ''];

  it('finds lines case-insensitively', () => {
    expect(searchLines(lines, 'EPOCH')).toEqual([0, 2]);
    expect(searchLines(lines, 'warning')).toEqual([1]);
    expect(searchLines(lines, 'missing')).toEqual([]);
  });

  it('matches every line for an empty query', () => {
    expect(searchLines(lines, '')).toEqual([0, 1, 2, 3]);
  });
});

describe('sortLogNames', () => {
  it('orders rank logs numerically, then the rest by name', () => {
    expect(
      sortLogNames(['user.log', 'rank_10.txt', 'supervisor.txt', 'rank_2.txt', 'prepare.txt', 'rank_0.txt', 'node_1.txt'])
    ).toEqual(['rank_0.txt', 'rank_2.txt', 'rank_10.txt', 'node_1.txt', 'prepare.txt', 'supervisor.txt', 'user.log']);
  });

  it('does not mistake other names for rank logs and leaves the input alone', () => {
    const names = ['rank_x.txt', 'rank_3.txt.bak', 'rank_1.txt'];
    expect(sortLogNames(names)).toEqual(['rank_1.txt', 'rank_3.txt.bak', 'rank_x.txt']);
    expect(names).toEqual(['rank_x.txt', 'rank_3.txt.bak', 'rank_1.txt']);
  });
});
