/**
 * Unit tests of the panel's pure models (src/model.ts), compiled by ts-jest as CommonJS with
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
