/**
 * The run states the panel knows (src/contract.ts) are the ones the REST contract declares
 * (jupyter_ext/openapi.yaml): change either alone and this fails.
 */

import * as fs from 'fs';
import * as path from 'path';

import { isTerminal, RUN_STATES, TERMINAL_STATES } from '../src/contract';

// js-yaml comes with jest (istanbul); it has no type declarations of its own here.
const yaml = require('js-yaml') as { load(text: string, opts?: object): unknown; CORE_SCHEMA: object };

const OPENAPI = path.resolve(__dirname, '../../jupyter_ext/openapi.yaml');

function openapi(): any {
  return yaml.load(fs.readFileSync(OPENAPI, 'utf8'), { schema: yaml.CORE_SCHEMA });
}

describe('run states against openapi.yaml', () => {
  const schemas = openapi().components.schemas;

  it('lists the State enum of openapi.yaml, in its order', () => {
    expect(schemas.State.type).toBe('string');
    expect([...RUN_STATES]).toEqual(schemas.State.enum);
  });

  it('is the enum a run status and a phase state are declared with', () => {
    expect(schemas.Run.properties.status.$ref).toBe('#/components/schemas/State');
    expect(schemas.Phase.properties.state.$ref).toBe('#/components/schemas/State');
  });

  it('takes the terminal states from the run states', () => {
    expect(TERMINAL_STATES.length).toBeGreaterThan(0);
    for (const s of TERMINAL_STATES) {
      expect(schemas.State.enum).toContain(s);
    }
  });

  it('has the terminal states openapi.yaml declares (x-terminal)', () => {
    expect([...TERMINAL_STATES].sort()).toEqual([...schemas.State['x-terminal']].sort());
  });
});

describe('isTerminal', () => {
  it('treats only Completed, Failed and Canceled as terminal', () => {
    expect(['Completed', 'Failed', 'Canceled'].every(isTerminal)).toBe(true);
    expect(isTerminal('CancelRequested')).toBe(false);
    expect(isTerminal('Finalizing')).toBe(false);
    expect(isTerminal('Running')).toBe(false);
    expect(isTerminal('completed')).toBe(false);
  });});
