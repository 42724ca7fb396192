// The web UI, bundled by esbuild when the dashboard starts (about a quarter of a second, once
// per process) and served from memory under content-hashed names. Everything the page loads is
// a file from this origin, so the CSP needs no 'unsafe-inline' and no CDN is ever contacted.
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { sendProblem } from '@precinct/runtime/http';

/** The policy for every response: the page may load its own files and talk to its own origin. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=()',
};

interface Asset {
  type: string;
  body: Buffer;
}

export interface UiBundle {
  html: string;
  assets: Map<string, Asset>;
}

const WEB = fileURLToPath(new URL('../web/', import.meta.url));
let built: Promise<UiBundle> | undefined;

/** Bundles web/main.tsx and web/app.css (once per process). */
export function buildUi(): Promise<UiBundle> {
  built ??= (async () => {
    const { build } = await import('esbuild');
    const out = await build({
      entryPoints: [`${WEB}main.tsx`],
      bundle: true,
      minify: true,
      format: 'esm',
      target: ['chrome120', 'firefox120', 'safari17'],
      jsx: 'automatic',
      define: { 'process.env.NODE_ENV': '"production"' },
      entryNames: '[name]-[hash]',
      outdir: '/assets',
      write: false,
      logLevel: 'silent',
      legalComments: 'none',
    });
    const assets = new Map<string, Asset>();
    let script = '';
    let style = '';
    for (const f of out.outputFiles) {
      const name = f.path.slice(f.path.lastIndexOf('/') + 1);
      const type = name.endsWith('.css')
        ? 'text/css; charset=utf-8'
        : 'text/javascript; charset=utf-8';
      assets.set(name, { type, body: Buffer.from(f.contents) });
      if (name.endsWith('.js')) script = name;
      if (name.endsWith('.css')) style = name;
    }
    const favicon = 'data:,';
    const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Precinct</title>
<link rel="icon" href="${favicon}">
<link rel="stylesheet" href="/assets/${style}">
<script type="module" src="/assets/${script}"></script>
</head><body><div id="root"></div></body></html>`;
    return { html, assets };
  })();
  built.catch(() => (built = undefined));
  return built;
}

/** The route patterns this plugin serves without a session (the page and its files). */
export const UI_PUBLIC_ROUTES: ReadonlySet<string> = new Set(['/', '/assets/:name']);

/**
 * Serves the UI at `/` and `/assets/:name`, and sets the security headers on every response of
 * the instance it is registered on (it is not encapsulated, so the API gets them too).
 */
export async function uiPlugin(app: FastifyInstance): Promise<void> {
  const ui = await buildUi();
  const etag = (b: Buffer) =>
    `"${createHash('sha256').update(b).digest('base64url').slice(0, 22)}"`;
  app.addHook('onSend', async (_req, reply, payload) => {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) reply.header(k, v);
    return payload;
  });
  app.get('/', async (_req, reply) =>
    reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(ui.html),
  );
  app.get('/assets/:name', async (req, reply) => {
    const a = ui.assets.get((req.params as { name: string }).name);
    if (!a) return sendProblem(reply, 'not_found');
    return reply
      .type(a.type)
      .header('cache-control', 'public, max-age=31536000, immutable')
      .header('etag', etag(a.body))
      .send(a.body);
  });
}
// Not encapsulated: its onSend hook must reach every route (what fastify-plugin does).
(uiPlugin as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true;
