import { randomUUID } from 'node:crypto';
import {
  DECISION_PATH,
  parseDecision,
  validateInput,
  type Decision,
  type DecisionInput,
  type PolicyEngine,
} from './decision.js';
import { PolicyError } from './errors.js';

/** One decision in OPA's decision log format (the fields OPA's log plugin uploads). */
export interface DecisionLogEntry {
  decision_id: string;
  /** The decision's data path, e.g. `demo/authorization/decision`. */
  path: string;
  /** The evaluated input: verified identities, document and action; never a token. */
  input: DecisionInput;
  result: Decision;
  /** RFC 3339, UTC. */
  timestamp: string;
}

export interface DecisionLogOptions {
  /** Receives each entry. Called synchronously; a sink that throws fails the decision. */
  sink: (entry: DecisionLogEntry) => void;
  /** Default {@link DECISION_PATH}. */
  path?: string;
  /** Clock, for tests. Default `() => new Date()`. */
  now?: () => Date;
  /** Id generator. Default `crypto.randomUUID`. */
  newId?: () => string;
}

/**
 * Builds an OPA-format decision log entry and hands it to the sink. The entry is assembled from
 * a fresh copy of the four input fields and of the decision, so nothing else a caller had on the
 * objects (a token, a header) can reach the log, and later mutation cannot rewrite it.
 */
export function decisionLogger(options: DecisionLogOptions): {
  log(input: DecisionInput, result: Decision): DecisionLogEntry;
} {
  if (typeof options.sink !== 'function') {
    throw new PolicyError('ERR_POLICY_CONFIG', 'decision log sink must be a function');
  }
  const path = options.path ?? DECISION_PATH;
  const now = options.now ?? (() => new Date());
  const newId = options.newId ?? randomUUID;
  return {
    log(input, result) {
      const entry: DecisionLogEntry = {
        decision_id: newId(),
        path,
        input: validateInput(input),
        result: structuredClone(parseDecision(result)),
        timestamp: now().toISOString(),
      };
      options.sink(entry);
      return entry;
    },
  };
}

/**
 * An engine that records every decision it makes, allow and deny, through `logger`. Inputs the
 * engine refuses and engine failures make no entry (there was no decision).
 */
export function withDecisionLog(
  engine: PolicyEngine,
  logger: ReturnType<typeof decisionLogger>,
): PolicyEngine {
  return {
    async decide(input) {
      const decision = await engine.decide(input);
      logger.log(input, decision);
      return decision;
    },
  };
}
