// The policy service (the reference's opa-service, 8085): OPA's Data API for the one decision,
// `POST /v1/data/demo/authorization/decision {"input": ...}` -> `{"result": ...}`, answered by
// any PolicyEngine (in-process Wasm or a real OPA server). Only the document service may ask.
import { Counter } from 'prom-client';
import { DECISION_PATH, PolicyError, type PolicyEngine } from '@precinct/policy';
import { sendProblem } from '@precinct/runtime/http';
import { createLogger, type Logger } from '@precinct/runtime';
import type { X509BundleSource, X509SvidSource } from '@precinct/spiffe';
import { mtlsService, type ListenConfig, type ServiceHandle } from './common.js';

export const POLICY_DECISION_ROUTE = `/v1/data/${DECISION_PATH}`;

export interface PolicyServiceOptions extends ListenConfig {
  svidSource: X509SvidSource;
  bundleSource: X509BundleSource;
  policy: PolicyEngine;
  /** SPIFFE IDs allowed to ask (the document service). */
  callers: readonly string[];
  logger?: Logger;
}

export async function startPolicyService(o: PolicyServiceOptions): Promise<ServiceHandle> {
  const logger = o.logger ?? createLogger('policy-service');
  const callers = new Set(o.callers);
  const svc = await mtlsService({
    ...o,
    name: 'policy-service',
    allow: (id) => callers.has(id),
    logger,
  });
  const decisions = new Counter({
    name: 'precinct_demo_policy_decisions_total',
    help: 'Policy decisions by result and bounded reason',
    labelNames: ['allow', 'reason'],
    registers: [svc.registry],
  });
  svc.app.post(POLICY_DECISION_ROUTE, async (req, reply) => {
    const body = req.body as { input?: unknown } | undefined;
    if (typeof body !== 'object' || body === null || !('input' in body)) {
      return sendProblem(reply, 'bad_request', 'body must be {"input": {...}}');
    }
    try {
      const result = await o.policy.decide(body.input as never);
      decisions.inc({ allow: String(result.allow), reason: result.reason });
      return { result };
    } catch (err) {
      if (err instanceof PolicyError && err.code === 'ERR_POLICY_INPUT') {
        return sendProblem(reply, 'bad_request', 'input is not a decision input');
      }
      // Cannot decide is never an allow: 503, and the document service denies.
      logger.warn({ code: (err as PolicyError).code }, 'policy engine unavailable');
      decisions.inc({ allow: 'false', reason: 'unavailable' });
      return sendProblem(reply, 'unavailable');
    }
  });
  return svc.start();
}
