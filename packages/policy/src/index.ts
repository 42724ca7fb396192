export { PolicyError, type PolicyErrorCode } from './errors.js';
export {
  DECISION_PATH,
  parseDecision,
  validateInput,
  type Decision,
  type DecisionDetails,
  type DecisionInput,
  type DecisionReason,
  type PolicyEngine,
} from './decision.js';
export { opaServerPolicy, type OpaServerPolicyOptions } from './opa-server.js';
export { wasmPolicy, type WasmPolicyOptions } from './wasm.js';
export { loadDemoData, policyFiles, validatePolicyData, type PolicyData } from './files.js';
export {
  decisionLogger,
  withDecisionLog,
  type DecisionLogEntry,
  type DecisionLogOptions,
} from './decision-log.js';
export {
  parseDocumentScope,
  policyGrantScope,
  type PolicyGrantScopeOptions,
  type ScopeGrant,
  type ScopeRefusal,
} from './grant-scope.js';
