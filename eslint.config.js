// Lint rules. The functional-core rule is the important one: statecharts/ must stay free of I/O,
// clocks and randomness so that the simulator and the agent can run it deterministically. The
// layer rules keep the dependencies pointing inwards (docs/architecture.md): statecharts/ imports
// nothing of ours, agent/ never imports cli/ or lab/, lab/ never imports cli/.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const OUTSIDE_THE_CORE = {
  group: ['../**'],
  message: 'statecharts/ imports nothing of ours outside statecharts/: the shells depend on the core.',
};
const AGENT_LAYER =
  'agent/ is the robot daemon: cli/ and lab/ plug into it from outside (their own entries), never the other way.';
const LAB_LAYER =
  'lab/ runs the agent and its runtime; the CLI is the outer shell and drives the lab, not the reverse.';

/** The same layer rule for import(), which no-restricted-imports does not look at. */
const noDynamicImport = (dirs, message) => ({
  selector: `ImportExpression[source.value=/^(\\.\\.\\/)+(${dirs})\\//]`,
  message,
});

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
    // Its tests and testing helpers may borrow the lab's fixtures (a free port, network namespaces)
    // and bootstrap's readers (to install a robot model as bootstrap would): they set up what they
    // test, not what the robot runs. The robot bundle's source maps are checked too (build.test.ts).
    files: ['agent/**/*.ts'],
    ignores: ['agent/**/*.test.ts', 'agent/**/testing/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['**/cli/**', '**/lab/**'], message: AGENT_LAYER }] },
      ],
      'no-restricted-syntax': ['error', noDynamicImport('cli|lab', AGENT_LAYER)],
    },
  },
  {
    files: ['lab/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['**/cli/**'], message: LAB_LAYER }] }],
      'no-restricted-syntax': ['error', noDynamicImport('cli', LAB_LAYER)],
    },
  },
  {
    files: ['statecharts/**/*.test.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [OUTSIDE_THE_CORE] }],
      'no-restricted-syntax': ['error', noDynamicImport('[a-z-]+', OUTSIDE_THE_CORE.message)],
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
            OUTSIDE_THE_CORE,
          ],
        },
      ],
      'no-restricted-syntax': ['error', noDynamicImport('[a-z-]+', OUTSIDE_THE_CORE.message)],
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
