import {
  answerView,
  formatLatency,
  IService,
  needsQuickRefresh,
  prettyJson,
  serviceSummary,
  serviceTraffic
} from '../src/endpoints';

function makeService(overrides: Partial<IService> = {}): IService {
  return {
    name: 'scaler-svc',
    state: 'Healthy',
    run_id: 'services_1000_abcd',
    scoring_uri: 'http://127.0.0.1:8890/score',
    auth_enabled: false,
    models: [{ name: 'scaler', version: 1 }],
    created_at: 1000,
    restarts: 0,
    requests: 0,
    errors: 0,
    p50_ms: null,
    p99_ms: null,
    ...overrides
  };
}

describe('serviceSummary', () => {
  it('lists the models as name:version and whether auth is on', () => {
    expect(serviceSummary(makeService())).toBe('scaler:1 · auth off');
    expect(serviceSummary(makeService({
      auth_enabled: true,
      models: [{ name: 'scaler', version: 3 }, { name: 'vocab', version: 1 }]
    }))).toBe('scaler:3, vocab:1 · auth on');
  });

  it('shows the restarts only when there were some', () => {
    expect(serviceSummary(makeService({ restarts: 1 }))).toBe('scaler:1 · auth off · 1 restart');
    expect(serviceSummary(makeService({ restarts: 4 }))).toBe('scaler:1 · auth off · 4 restarts');
  });

  it('says so when no model is deployed', () => {
    expect(serviceSummary(makeService({ models: [] }))).toBe('no models · auth off');
  });
});

describe('serviceTraffic', () => {
  it('says no requests before the first', () => {
    expect(serviceTraffic(makeService())).toBe('No requests yet');
  });

  it('counts requests and errors, with the latency percentiles', () => {
    expect(serviceTraffic(makeService({ requests: 12, errors: 1, p50_ms: 0.4237, p99_ms: 3.14 })))
      .toBe('12 requests · 1 error · p50 0.42 ms · p99 3.1 ms');
    expect(serviceTraffic(makeService({ requests: 1, errors: 0, p50_ms: 250, p99_ms: 1500 })))
      .toBe('1 request · 0 errors · p50 250 ms · p99 1.5 s');
  });

  it('leaves out a latency not measured (only refused requests)', () => {
    expect(serviceTraffic(makeService({ requests: 2, errors: 0 }))).toBe('2 requests · 0 errors');
    expect(serviceTraffic(makeService({ requests: 2, errors: undefined, p50_ms: undefined })))
      .toBe('2 requests · 0 errors');
  });
});

describe('formatLatency', () => {
  it('keeps two significant digits under 100 ms, whole milliseconds to 1 s, then formatDuration', () => {
    expect(formatLatency(0.4237)).toBe('0.42 ms');
    expect(formatLatency(0.05)).toBe('0.05 ms');
    expect(formatLatency(12.345)).toBe('12 ms');
    expect(formatLatency(99.4)).toBe('99 ms');
    expect(formatLatency(340.6)).toBe('341 ms');
    expect(formatLatency(1000)).toBe('1.0 s');
    expect(formatLatency(75000)).toBe('1 min 15 s');
  });

  it('has a floor, and a dash for what is not a number', () => {
    expect(formatLatency(0.001)).toBe('< 0.01 ms');
    expect(formatLatency(0)).toBe('< 0.01 ms');
    expect(formatLatency(NaN)).toBe('—');
  });
});

describe('needsQuickRefresh', () => {
  it('is true while a service starts or is being restarted', () => {
    expect(needsQuickRefresh([])).toBe(false);
    expect(needsQuickRefresh([makeService(), makeService({ state: 'Failed' })])).toBe(false);
    expect(needsQuickRefresh([makeService(), makeService({ state: 'Transitioning' })])).toBe(true);
    expect(needsQuickRefresh([makeService({ state: 'Unhealthy' })])).toBe(true);
  });
});

describe('prettyJson', () => {
  it('keeps what fits on one line', () => {
    expect(prettyJson({ result: [3, 6] })).toBe('{"result": [3, 6]}');
    expect(prettyJson([])).toBe('[]');
    expect(prettyJson('text')).toBe('"text"');
    expect(prettyJson(null)).toBe('null');
  });

  it('breaks what is too wide, keeping the parts that fit whole', () => {
    const value = { result: [1, 2, 3], labels: ['a much longer label', 'another long label'] };
    expect(prettyJson(value, 40)).toBe(
      '{\n  "result": [1, 2, 3],\n  "labels": [\n    "a much longer label",\n    "another long label"\n  ]\n}');
  });

  it('counts the key in the width of the value after it', () => {
    // '  "k": [1, 2]' is 13 columns, '  "key": [1, 2]' 15
    expect(prettyJson({ k: [1, 2], key: [1, 2] }, 13))
      .toBe('{\n  "k": [1, 2],\n  "key": [\n    1,\n    2\n  ]\n}');
  });

  it('reads back as the same value', () => {
    const value = { a: [{ b: 1, c: [true, null, 'x'] }, {}], d: { e: -1.5 } };
    expect(JSON.parse(prettyJson(value, 10))).toEqual(value);
  });
});

describe('answerView', () => {
  it('shows an answer as JSON, with its status and time', () => {
    expect(answerView({ status: 200, text: '{"result": [3,6]}' }, 0.0123)).toEqual({
      ok: true, status: 200, head: 'HTTP 200 · 12 ms', message: '', detail: '{"result": [3, 6]}'
    });
  });

  it('shows an answer that is not JSON as it came', () => {
    expect(answerView({ status: 200, text: '[NaN]' }, 0.5).detail).toBe('[NaN]');
  });

  it('shows the message and traceback of a run() that raised', () => {
    const text = JSON.stringify({
      error: 'run() raised: ValueError: boom, as asked',
      traceback: 'Traceback…\nValueError: boom'
    });
    expect(answerView({ status: 500, text }, 0.02)).toEqual({
      ok: false, status: 500, head: 'HTTP 500 · 20 ms',
      message: 'run() raised: ValueError: boom, as asked', detail: 'Traceback…\nValueError: boom'
    });
  });

  it("shows jupyter-train's own errors with their code", () => {
    const text = JSON.stringify({
      error_code: 'conflict',
      message: "Service 'x' is Transitioning; it scores only when Healthy."
    });
    const view = answerView({ status: 409, text }, 0.003);
    expect(view.ok).toBe(false);
    expect(view.status).toBe(409);
    expect(view.message).toBe("conflict: Service 'x' is Transitioning; it scores only when Healthy.");
    expect(view.detail).toBe('');
  });

  it('shows an error body with no message as it came', () => {
    for (const text of ['<html>Bad Gateway</html>', '[1]', '{"detail": "x"}', '']) {
      const view = answerView({ status: 502, text }, 1);
      expect(view).toEqual({
        ok: false, status: 502, head: 'HTTP 502 · 1.0 s', message: 'The service answered with an error.', detail: text
      });
    }
  });
});
