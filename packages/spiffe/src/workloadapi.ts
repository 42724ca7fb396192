// `@precinct/spiffe/workloadapi`: the Workload API client, the live sources and what a
// Workload API server needs. A separate entry point because it loads @grpc/grpc-js; IDs,
// SVIDs, bundles and TLS come from `@precinct/spiffe` without it.
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
// For Workload API servers (the identity server, test servers): the service definition
// loaded from the SDK's workload.proto, and JSON -> google.protobuf.Struct.
export {
  workloadApiServiceDefinition,
  jsonToStruct,
  SECURITY_HEADER as WORKLOAD_API_SECURITY_HEADER,
} from './workloadapi/proto.js';
