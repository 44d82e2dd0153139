/**
 * Unit tests of the panel's pure modules (src/contract, runs, metrics, logs, format, sdk) and of
 * the run states against jupyter_ext/openapi.yaml, compiled by ts-jest as CommonJS with
 * tsconfig.test.json. Run with `jlpm test`.
 */
module.exports = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  transform: {
    '^.+\\.tsx?$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.test.json' }]
  }
};
