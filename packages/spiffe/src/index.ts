// Public API of @precinct/spiffe (main entry). An allow-list: what is not exported here or by a
// subpath entry (src/workloadapi.ts, src/fastify.ts) is internal.

export { SpiffeError, type SpiffeErrorCode } from './errors.js';

// spiffeid
export {
  SpiffeId,
  TrustDomain,
  toSpiffeId,
  toTrustDomain,
  MAX_SPIFFE_ID_LENGTH,
} from './spiffeid/id.js';
export { matchAny, matchId, matchOneOf, matchMemberOf, type Matcher } from './spiffeid/match.js';

// bundles
export { X509Bundle, type X509BundleSource } from './bundle/x509bundle.js';
export { JwtBundle, type JwtBundleSource } from './bundle/jwtbundle.js';
export { SpiffeBundle } from './bundle/spiffebundle.js';
export { X509BundleSet, JwtBundleSet } from './bundle/set.js';

// svids
export {
  X509Svid,
  verifyX509Svid,
  idFromCert,
  type X509SvidSource,
  type VerifyResult,
} from './svid/x509svid.js';
export {
  parseAndValidate as parseAndValidateJwtSvid,
  parseInsecure as parseInsecureJwtSvid,
  JWT_SVID_ALGORITHMS,
  type JwtSvid,
  type JwtSvidSource,
  type ValidateOptions as JwtSvidValidateOptions,
} from './svid/jwtsvid.js';

// tls
export {
  authorizeAny,
  authorizeId,
  authorizeOneOf,
  authorizeMemberOf,
  authorizeIf,
  type Authorizer,
} from './tls/authorizer.js';
export {
  tlsServerOptions,
  tlsClientOptions,
  tlsClientOptionsServerAuth,
  spiffeServer,
  peerSpiffeId,
  authenticatePeer,
  undiciConnector,
  type SpiffeTlsServerOptions,
  type SpiffeTlsClientOptions,
  type TlsExtraOptions,
} from './tls/options.js';

// The Workload API client and sources (@grpc/grpc-js) are in `@precinct/spiffe/workloadapi`,
// the Fastify plugin in `@precinct/spiffe/fastify`: validation alone loads neither.
