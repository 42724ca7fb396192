import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { readdirSync } from 'node:fs';

const SERVICE_DIRS = readdirSync(new URL('./services', import.meta.url));
const SERVICES = SERVICE_DIRS.map((d) => `@precinct/${d}`);

export default tseslint.config(
  { ignores: ['**/node_modules/**', '**/dist/**', '**/*.d.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        URL: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        setImmediate: 'readonly',
        AbortController: 'readonly',
        AbortSignal: 'readonly',
        TextEncoder: 'readonly',
        TextDecoder: 'readonly',
        fetch: 'readonly',
        performance: 'readonly',
        structuredClone: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'off',
    },
  },
  // Layering: libraries never import a service or the CLI; no shipped code imports the test
  // helpers; services talk over the network, never by import; benches use public entry points.
  {
    files: ['packages/*/src/**/*.ts'],
    ignores: ['packages/testing/src/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: SERVICES, message: 'a library never imports a service' },
            { group: ['@precinct/cli', '@precinct/testing'], message: 'not from a library' },
          ],
        },
      ],
    },
  },
  ...SERVICE_DIRS.map((dir) => ({
    files: [`services/${dir}/src/**/*.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: SERVICES.filter((s) => s !== `@precinct/${dir}`),
              message: 'services talk over the network, never by import',
            },
            { group: ['@precinct/testing', '@precinct/cli'], message: 'not from a service' },
          ],
        },
      ],
    },
  })),
  {
    files: ['bench/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '^(\\.\\./)+(packages|services)/[^/]+/src/',
              message: 'benches import packages through their public entry points',
            },
          ],
        },
      ],
    },
  },
);
