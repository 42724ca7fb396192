export {
  DEMO_CONSENT,
  DEMO_PORTS,
  demoGrantScope,
  demoPolicyData,
  demoServiceId,
  type DemoPorts,
} from './demo.js';
export {
  MtlsClient,
  agentSpiffeId,
  documentScope,
  pickSvid,
  stripIdentityHeaders,
  userSpiffeId,
  type ServiceHandle,
} from './common.js';
export {
  POLICY_DECISION_ROUTE,
  startPolicyService,
  type PolicyServiceOptions,
} from './policy-service.js';
export {
  startDocumentService,
  type AccessAnswer,
  type DocumentService,
  type DocumentServiceOptions,
} from './document-service.js';
export { startUserService, type UserServiceOptions } from './user-service.js';
export { startAgentService, type AgentServiceOptions } from './agent-service.js';
export { tokenHash, type TokenServiceRef } from './txn.js';
export {
  RECORDS_GRANTS,
  RECORDS_SCHEMA,
  LEASE_EXPIRY_METRIC,
  startRecordsService,
  type RecordsDatabase,
  type RecordsServiceOptions,
} from './records-service.js';
