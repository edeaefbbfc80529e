// Lint rules. The functional-core rule is the important one: statecharts/ must stay free of I/O,
// clocks and randomness so that the simulator and the agent can run it deterministically. The
// layer rules keep the dependencies pointing inwards (docs/architecture.md): statecharts/ imports
// nothing of ours, agent/ imports only statecharts/, lab/ never imports cli/.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const OUTSIDE_THE_CORE = {
  group: ['../**'],
  message: 'statecharts/ imports nothing of ours outside statecharts/: the shells depend on the core.',
};

export default tseslint.config(
  { ignores: ['node_modules/**', 'coverage/**', 'agent/bundle/**', 'lab/bundle/**'] },
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
    // agent/ is the robot's daemon: it may use statecharts/, never the CLI or the lab. Its tests and
    // testing helpers may borrow the lab's fixtures (a free port, network namespaces) and
    // bootstrap's bundle and template readers (to install a robot model as bootstrap would), which
    // set up what they test, not what the robot runs.
    files: ['agent/**/*.ts'],
    ignores: ['agent/**/*.test.ts', 'agent/**/testing/**', 'agent/bundle/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/cli/**', '**/lab/**'],
              message:
                'agent/ is the robot daemon: cli/ and lab/ plug into it from outside, never the other way.',
            },
          ],
        },
      ],
      // no-restricted-imports does not look at import(): the same rule for dynamic imports.
      'no-restricted-syntax': [
        'error',
        {
          selector: 'ImportExpression[source.value=/^(\\.\\.\\/)+(cli|lab)\\//]',
          message:
            'agent/ is the robot daemon: cli/ and lab/ plug into it from outside, never the other way.',
        },
      ],
    },
  },
  {
    files: ['lab/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/cli/**'],
              message:
                'lab/ runs the agent and its runtime; the CLI is the outer shell and drives the lab, not the reverse.',
            },
          ],
        },
      ],
      'no-restricted-syntax': [
        'error',
        {
          selector: 'ImportExpression[source.value=/^(\\.\\.\\/)+cli\\//]',
          message:
            'lab/ runs the agent and its runtime; the CLI is the outer shell and drives the lab, not the reverse.',
        },
      ],
    },
  },
  {
    files: ['statecharts/**/*.test.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [OUTSIDE_THE_CORE] }] },
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
            OUTSIDE_THE_CORE,
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
