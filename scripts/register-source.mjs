// `node --import ./scripts/register-source.mjs file.ts` runs any TypeScript entry point of
// this repository from source. Hooks registered later run first: ours adds the export
// condition, then tsx resolves .js specifiers to .ts files and transpiles them.
import { register } from 'node:module';
import { register as registerTsx } from 'tsx/esm/api';

registerTsx();
register('./source-hooks.mjs', import.meta.url);
