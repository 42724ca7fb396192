// Benchmarks that measure a process's memory run it as plain JavaScript, as in production: the
// entry file and the workspace sources it imports bundled by esbuild (tsx's own dependency)
// into one ES module under node_modules/.cache/precinct-bench/, third-party packages left as
// imports of node_modules. The child then runs with plain `node`, without tsx's loader (its
// worker thread, its own heap, esbuild's client and cached source maps: about 26 MB).
import { mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** Where the bundles go. */
export const BUNDLE_DIR = fileURLToPath(
  new URL('../../node_modules/.cache/precinct-bench/', import.meta.url),
);

/**
 * Bundles `entry` (a path, or a file URL such as `import.meta.url`) with the workspace sources it imports; returns the
 * path of the `.mjs`. In every bundled workspace module but the entry, `import.meta.url` is
 * that module's own source URL, so code that reads files beside itself (a `.proto`, a JSON
 * document) or resolves packages from its own directory behaves as it does unbundled. The
 * entry keeps the bundle's URL, so it can spawn itself.
 */
export async function bundle(entry: string | URL): Promise<string> {
  const { build } = await import('esbuild');
  const entryPath = String(entry).startsWith('file:') ? fileURLToPath(entry) : String(entry);
  mkdirSync(BUNDLE_DIR, { recursive: true });
  const outfile = join(BUNDLE_DIR, basename(entryPath).replace(/(\.bench)?\.ts$/, '.mjs'));
  await build({
    entryPoints: [entryPath],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    conditions: ['precinct-source'],
    logLevel: 'warning',
    plugins: [
      {
        name: 'precinct-workspace',
        setup(b) {
          // Workspace packages are bundled (from source); everything else stays an import.
          b.onResolve({ filter: /^[^./]/ }, (a) =>
            a.path.startsWith('@precinct/') ? undefined : { path: a.path, external: true },
          );
          b.onLoad({ filter: /\.ts$/ }, async (a) => {
            const text = await readFile(a.path, 'utf8');
            if (a.path === entryPath || !text.includes('import.meta.url')) return undefined;
            const url = JSON.stringify(pathToFileURL(a.path).href);
            return { contents: text.replaceAll('import.meta.url', url), loader: 'ts' };
          });
        },
      },
    ],
  });
  return outfile;
}
