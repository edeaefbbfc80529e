// Lint rules. The functional-core rule is the important one: statecharts/ must stay free of I/O,
// clocks and randomness so that the simulator and the agent can run it deterministically.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'node_modules/**',
      'coverage/**',
      'agent/bundle/**',
      'agent/testing/bundle/**',
      'lab/bundle/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['**/*.js'],
    languageOptions: { globals: { process: 'readonly', URL: 'readonly', console: 'readonly' } },
  },
  {
    // The dashboard's page code runs in the browser.
    files: ['cli/dashboard/web/**/*.js'],
    languageOptions: {
      globals: {
        document: 'readonly',
        location: 'readonly',
        fetch: 'readonly',
        EventSource: 'readonly',
        URLSearchParams: 'readonly',
        Node: 'readonly',
        confirm: 'readonly',
      },
    },
  },
  {
    files: ['statecharts/**/*.ts'],
    ignores: ['statecharts/**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['node:*', 'fs', 'dgram', 'net', 'child_process'],
              message: 'statecharts/ is the pure core: do I/O in the agent shell.',
            },
          ],
        },
      ],
      'no-restricted-properties': [
        'error',
        { object: 'Date', property: 'now', message: 'Time is an input: read event.now.' },
        {
          object: 'Math',
          property: 'random',
          message: 'Randomness is an input: use the seeded rng in context.',
        },
        { object: 'performance', property: 'now', message: 'Time is an input: read event.now.' },
      ],
      'no-restricted-globals': ['error', 'setTimeout', 'setInterval', 'process'],
    },
  },
);
