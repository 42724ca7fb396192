// Public API of @precinct/spiffe. An allow-list: what is not exported here is internal.

export { SpiffeError } from './errors.js';

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

// workloadapi + tls
export {
  WorkloadApiClient,
  statusError as workloadApiStatusError,
  type WorkloadApiClientOptions,
  type WorkloadApiLogger,
  type CallOptions,
  type JwtSvidParams,
  type Watcher,
} from './workloadapi/client.js';
export {
  parseWorkloadEndpoint,
  resolveWorkloadEndpoint,
  ENDPOINT_SOCKET_ENV,
  type WorkloadEndpoint,
} from './workloadapi/endpoint.js';
export type { BackoffOptions } from './workloadapi/backoff.js';
export type { X509Context } from './workloadapi/convert.js';
export {
  X509Source,
  JwtSource,
  BundleSource,
  type SourceEvent,
  type SourceOptions,
  type X509SourceOptions,
} from './workloadapi/sources.js';
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
export { spiffeFastify, spiffeMiddleware, type SpiffeFastifyOptions } from './tls/fastify.js';
// For Workload API servers (the identity server, test servers): the service definition
// loaded from the SDK's workload.proto, and JSON -> google.protobuf.Struct.
export {
  workloadApiServiceDefinition,
  jsonToStruct,
  SECURITY_HEADER as WORKLOAD_API_SECURITY_HEADER,
} from './workloadapi/proto.js';
