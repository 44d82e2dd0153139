/**
 * The run states of the REST contract (jupyter_ext/openapi.yaml, components.schemas.State),
 * the one place the panel spells them. test/contract.spec.ts reads openapi.yaml and fails when
 * this list and the enum there disagree.
 */

/** Every state a run can be in, in the order openapi.yaml declares them. */
export const RUN_STATES = [
  'NotStarted',
  'Preparing',
  'Queued',
  'Starting',
  'Running',
  'Finalizing',
  'CancelRequested',
  'Completed',
  'Failed',
  'Canceled'
] as const;

export type RunState = (typeof RUN_STATES)[number];

/** The states a run never leaves. */
export const TERMINAL_STATES: ReadonlyArray<string> = [
  'Completed',
  'Failed',
  'Canceled'
] satisfies ReadonlyArray<RunState>;

export function isTerminal(status: string): boolean {
  return TERMINAL_STATES.includes(status);
}
