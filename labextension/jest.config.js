/**
 * Unit tests of the panel's pure modules (src/contract, runs, metrics, logs, format, sdk), of
 * the shared chart (kernel_lib/widgets/chart.js, the one source the notebook monitor also loads;
 * its tests run in jsdom, see test/chart.spec.ts) and of the run states against
 * jupyter_ext/openapi.yaml, compiled by ts-jest as CommonJS with tsconfig.test.json (allowJs, so
 * the chart's ES module is compiled too). Run with `jlpm test`.
 */
module.exports = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  transform: {
    '^.+\\.tsx?$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.test.json' }],
    '^.+/kernel_lib/widgets/.+\\.js$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.test.json' }]
  }
};
