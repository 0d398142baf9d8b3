// Lint runs in the test command with --max-warnings 0.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import importX, { createNodeResolver } from 'eslint-plugin-import-x';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', '.scratch/', '.tap/', 'backproof-demo/', '.docker-context/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    plugins: { 'import-x': importX },
    settings: {
      'import-x/ignore': ['node_modules'],
      'import-x/extensions': ['.ts', '.js'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      // Sources import './x.js' for './x.ts' (NodeNext).
      'import-x/resolver-next': [createNodeResolver({ extensionAlias: { '.js': ['.ts', '.js'] } })],
    },
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      // The floors of the house (README "Development"): orchestrator/core is the ground floor that
      // every folder may use; the plug-ins (drivers, restore-sandboxes) stand on it alone; reports
      // read evidence and never reach up into the CLI, the dashboard, the daemon or the runner.
      'import-x/no-restricted-paths': [
        'error',
        {
          zones: [
            { target: './orchestrator/core', from: './orchestrator', except: ['./core'], message: 'orchestrator/core imports nothing of the project outside core' },
            { target: './orchestrator/core', from: ['./drivers', './restore-sandboxes', './reports'], message: 'orchestrator/core imports nothing of the project outside core' },
            { target: './drivers', from: './orchestrator', except: ['./core'], message: 'a storage driver imports only orchestrator/core' },
            { target: './drivers', from: ['./restore-sandboxes', './reports'], message: 'a storage driver imports only orchestrator/core' },
            { target: './restore-sandboxes', from: './orchestrator', except: ['./core'], message: 'restore-sandboxes import only orchestrator/core' },
            { target: './restore-sandboxes', from: ['./drivers', './reports'], message: 'restore-sandboxes import only orchestrator/core' },
            {
              target: './reports',
              from: ['./orchestrator/cli', './orchestrator/web', './orchestrator/daemon', './orchestrator/runner'],
              message: 'reports read evidence: they never import the CLI, the dashboard, the daemon or the runner',
            },
          ],
        },
      ],
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    // tap tracks the promises of t.test() itself.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-floating-promises': 'off' },
  },
  {
    files: ['**/*.cjs'],
    languageOptions: { globals: { process: 'readonly', require: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', performance: 'readonly' } },
  },
);
