import {
  formatBytes,
  formatDuration,
  formatResources,
  formatValue,
  raySummary
} from '../src/format';

describe('formatDuration', () => {
  it('formats each range', () => {
    expect(formatDuration(0.85)).toBe('850 ms');
    expect(formatDuration(2.345)).toBe('2.3 s');
    expect(formatDuration(12.4)).toBe('12 s');
    expect(formatDuration(185)).toBe('3 min 05 s');
    expect(formatDuration(60)).toBe('1 min 00 s');
    expect(formatDuration(2 * 3600 + 4 * 60 + 30)).toBe('2 h 04 min');
  });

  it('shows a dash when there is nothing to show', () => {
    expect(formatDuration(null)).toBe('—');
    expect(formatDuration(undefined)).toBe('—');
    expect(formatDuration(NaN)).toBe('—');
    expect(formatDuration(Infinity)).toBe('—');
  });
});

describe('formatValue', () => {
  it('keeps integers and text as they are', () => {
    expect(formatValue(42)).toBe('42');
    expect(formatValue(-3)).toBe('-3');
    expect(formatValue('nan')).toBe('nan');
    expect(formatValue(0)).toBe('0');
  });

  it('rounds to 4 significant digits', () => {
    expect(formatValue(0.123456)).toBe('0.1235');
    expect(formatValue(3.14159)).toBe('3.142');
    expect(formatValue(1234.5678)).toBe('1235');
    expect(formatValue(0.5)).toBe('0.5');
  });

  it('uses exponent notation for very small and very large values', () => {
    expect(formatValue(0.000012346)).toBe('1.235e-5');
    expect(formatValue(12345678.9)).toBe('1.235e+7');
  });

  it('is empty for a missing value', () => {
    expect(formatValue(null)).toBe('');
    expect(formatValue(undefined)).toBe('');
  });
});

describe('formatBytes', () => {
  it('counts in powers of 1000 up to GB, one decimal past bytes', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(999)).toBe('999 B');
    expect(formatBytes(1000)).toBe('1.0 KB');
    expect(formatBytes(1500)).toBe('1.5 KB');
    expect(formatBytes(2_000_000)).toBe('2.0 MB');
    expect(formatBytes(3.1e9)).toBe('3.1 GB');
    expect(formatBytes(5e12)).toBe('5000.0 GB');
  });

  it('is empty for a missing size', () => {
    expect(formatBytes(undefined)).toBe('');
  });
});

describe('Ray cluster view', () => {
  it('formats resources CPU, GPU, custom, then memory, with usage where known', () => {
    expect(formatResources({ memory: 2 * 1024 ** 3, CPU: 2, GPU: 1, accel: 0.5 }, { CPU: 2, GPU: 0, memory: 0 }))
      .toBe('CPU 2/2 · GPU 0/1 · accel 0.5 · memory 0.0/2.0 GiB');
    expect(formatResources({ CPU: 1.25 })).toBe('CPU 1.25');
    expect(formatResources({})).toBe('');
  });

  it('summarizes nodes, busy and idle, starting nodes and the standing request', () => {
    const node = (state: string) => ({ node_id: 'n', address: '10.0.0.1', state, resources: { CPU: 2 } });
    expect(raySummary({ state: 'ready', nodes: [node('busy'), node('idle'), node('idle')],
      requested: [{ CPU: 2 }], pending_nodes: 2 }))
      .toBe('3 Ray nodes · 1 busy · 2 idle · 2 starting · 1 bundle requested');
    expect(raySummary({ state: 'ready', nodes: [node('alive')] })).toBe('1 Ray node');
    expect(raySummary({ state: 'unreachable', nodes: [], error: 'ConnectionError: refused' }))
      .toBe('unreachable: ConnectionError: refused');
    expect(raySummary({ state: 'connecting', nodes: [] })).toBe('connecting…');
    expect(raySummary({ state: 'not started', nodes: [], error: 'The local Ray head starts with the first run.' }))
      .toBe('The local Ray head starts with the first run.');
  });
});
