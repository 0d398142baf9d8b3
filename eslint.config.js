// Lint runs in the test command with --max-warnings 0.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import importX, { createNodeResolver } from 'eslint-plugin-import-x';

// An opening HTML or SVG tag (an esquery regex: no "/" inside).
const MARKUP_TAG =
  '/<(a|b|i|p|br|hr|h[1-6]|div|span|table|thead|tbody|tr|td|th|ul|ol|li|dl|dt|dd|code|pre|form|input|button|label|select|option|section|article|header|nav|main|figure|figcaption|img|svg|g|line|rect|circle|polyline|path|text|tspan|title|time|strong|em|small|details|summary|style|script|link|iframe|html|head|body|meta)[\\s>]/i';

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
      // The floors of the house (docs/development.md, CONTRIBUTING.md): orchestrator/core is the ground floor that
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
      'no-restricted-properties': [
        'error',
        {
          object: 'AbortSignal',
          property: 'timeout',
          message: 'use timeoutSignal (orchestrator/core/timeout-signal.ts): inside AbortSignal.any, Node 20 can garbage-collect AbortSignal.timeout and lose the deadline',
        },
      ],
    },
  },
  {
    // Markup is built only through orchestrator/core/html.ts's html`...` template, which escapes
    // every value: an HTML or SVG tag in a plain string or an untagged template literal is markup
    // assembled by hand, where one forgotten escape is an XSS in an auditor's browser.
    files: ['orchestrator/web/**/*.ts', 'orchestrator/alerts/**/*.ts', 'reports/**/*.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector: `:not(TaggedTemplateExpression) > TemplateLiteral > TemplateElement[value.raw=${MARKUP_TAG}]`,
          message: "markup in a plain template literal: write it as html`...` (orchestrator/core/html.ts), which escapes every value",
        },
        { selector: `Literal[value=${MARKUP_TAG}]`, message: "markup in a string: write it as html`...` (orchestrator/core/html.ts), which escapes every value" },
      ],
    },
  },
  {
    // tap tracks the promises of t.test() itself.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-floating-promises': 'off', 'no-restricted-properties': 'off' },
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
