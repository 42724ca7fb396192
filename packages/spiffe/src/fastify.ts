// `@precinct/spiffe/fastify`: the HTTP-server adapters (the Fastify mTLS plugin, which also
// augments Fastify's request type, and the Connect-style middleware). A separate entry point
// so the main entry carries no Fastify types and no @precinct/runtime.
export { spiffeFastify, spiffeMiddleware, type SpiffeFastifyOptions } from './tls/fastify.js';
