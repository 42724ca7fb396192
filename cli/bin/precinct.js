#!/usr/bin/env node
// Inside the repository the command runs from TypeScript sources (no build step); an
// installed package runs its compiled dist/.
import { existsSync } from 'node:fs';

const sourceHooks = new URL('../../scripts/register-source.mjs', import.meta.url);
const source = new URL('../src/main.ts', import.meta.url);
if (existsSync(sourceHooks) && existsSync(source)) {
  await import(sourceHooks.href);
  await import(source.href);
} else {
  await import(new URL('../dist/main.js', import.meta.url).href);
}
