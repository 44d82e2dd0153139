/** Builders shared by the spec files. */

import { IRun } from '../src/runs';

export function makeRun(overrides: Partial<IRun> = {}): IRun {
  return {
    id: 'exp_1000_abcd',
    experiment: 'exp',
    status: 'Running',
    created_at: 1000,
    ...overrides
  };
}
