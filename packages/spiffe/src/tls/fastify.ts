import type { IncomingMessage, ServerResponse } from 'node:http';
import type * as tls from 'node:tls';
import type { FastifyPluginCallback } from 'fastify';
import { PROBLEM_CONTENT_TYPE, problem } from '@precinct/runtime/http';
import type { SpiffeId } from './core.js';
import { peerSpiffeId, spiffeServer, type SpiffeTlsServerOptions } from './options.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The client's authenticated SPIFFE ID (set by the @precinct/spiffe plugin). */
    spiffeId: SpiffeId | undefined;
  }
}

export interface SpiffeFastifyOptions {
  /** The same object passed to Fastify as `https` (from `tlsServerOptions()`). */
  tlsOptions: SpiffeTlsServerOptions;
}

/**
 * Fastify plugin for an mTLS server built with `Fastify({ https: tlsOptions })`: installs
 * SPIFFE authentication and SVID rotation on `fastify.server` (see `spiffeServer`) and
 * decorates `request.spiffeId`. Register it before `listen()`.
 */
export const spiffeFastify: FastifyPluginCallback<SpiffeFastifyOptions> = (fastify, opts, done) => {
  if (!opts?.tlsOptions) {
    return done(new TypeError('spiffeFastify: tlsOptions (from tlsServerOptions()) is required'));
  }
  try {
    spiffeServer(fastify.server as unknown as tls.Server, opts.tlsOptions);
  } catch (err) {
    return done(err as Error);
  }
  fastify.decorateRequest('spiffeId', undefined);
  fastify.addHook('onRequest', (request, _reply, next) => {
    request.spiffeId = peerSpiffeId(request.raw.socket);
    next();
  });
  done();
};
// What fastify-plugin would set: no encapsulation (the decorator is visible to the app).
Object.assign(spiffeFastify, {
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: '@precinct/spiffe',
  [Symbol.for('plugin-meta')]: { name: '@precinct/spiffe', fastify: '5.x' },
});

/**
 * Connect/Express-style middleware: sets `req.spiffeId` from the TLS peer, for servers
 * wrapped with `spiffeServer()`. Requests without an authenticated peer never reach it
 * (the connection was refused), so a missing ID here means a plain-HTTP mount: it answers 401.
 */
export function spiffeMiddleware(): (
  req: IncomingMessage & { spiffeId?: SpiffeId },
  res: ServerResponse,
  next: (err?: unknown) => void,
) => void {
  return (req, res, next) => {
    const id = peerSpiffeId(req.socket);
    if (!id) {
      const body = problem('authentication_failed');
      res.statusCode = body.status;
      res.setHeader('content-type', PROBLEM_CONTENT_TYPE);
      res.end(JSON.stringify(body));
      return;
    }
    req.spiffeId = id;
    next();
  };
}
