import { randomUUID } from 'node:crypto';
import type { ExchangeDecision } from './exchange.js';

/**
 * An audit event for one scope decision of an exchange, in the audit store's event shape
 * (structurally `AuditEventInput` of @precinct/audit-client, which this service does not
 * import: the composition that owns the audit client writes these).
 */
export interface ExchangeAuditEvent {
  event_type: 'token.exchange';
  event_category: 'authorization';
  event_action: string;
  event_outcome: 'success' | 'failure';
  event_timestamp: string;
  actor_type: 'agent' | 'user' | 'workload';
  actor_id: string;
  resource_type: string;
  resource_id: string;
  correlation_id: string;
  severity: 'info' | 'warning';
  error_code?: string;
  event_data: Record<string, unknown>;
}

export interface ExchangeAuditOptions {
  /**
   * What a scope names, e.g. `documents:read:DOC-001` -> {type: 'document', id: 'DOC-001',
   * action: 'read'}, so that token service and resource server record the same resource.
   * Default (or undefined for a scope): resource type `scope`, id the scope itself.
   */
  resourceOf?: (scope: string) => { type: string; id: string; action?: string } | undefined;
}

/**
 * The audit events of one exchange: one per requested scope (the unit the policy decides),
 * granted or refused with its own reason, or one without a scope when the request was refused
 * before its scopes were read. The actor is who the token is for: the agent when delegated,
 * else the person, else the calling workload; `event_data` names the person (`on_behalf_of`),
 * the actor chain and `txn` (the store indexes them) and carries token hashes only.
 */
export function exchangeAuditEvents(
  d: ExchangeDecision,
  options: ExchangeAuditOptions = {},
): ExchangeAuditEvent[] {
  const granted = new Set(d.granted);
  const refused = new Map(d.refused.map((r) => [r.scope, r]));
  const scopes: Array<string | undefined> = d.requested.length > 0 ? d.requested : [undefined];
  // Without a transaction (refused before one existed) each event still needs a correlation.
  const correlation = d.txn ?? `no-txn-${randomUUID()}`;
  return scopes.map((scope) => {
    const ok = d.decision === 'allow' && scope !== undefined && granted.has(scope);
    const refusal = scope === undefined ? undefined : refused.get(scope);
    const reason = ok
      ? 'granted'
      : (refusal?.reason ?? (d.decision === 'allow' ? 'scope_not_granted' : d.reason));
    const resource = scope === undefined ? undefined : options.resourceOf?.(scope);
    return {
      event_type: 'token.exchange',
      event_category: 'authorization',
      event_action: resource?.action ?? 'token_exchange',
      event_outcome: ok ? 'success' : 'failure',
      event_timestamp: new Date(d.at).toISOString(),
      actor_type: d.agent ? 'agent' : d.person ? 'user' : 'workload',
      actor_id: d.agent ?? d.person ?? d.caller,
      resource_type: resource?.type ?? 'scope',
      resource_id: resource?.id ?? scope ?? '',
      correlation_id: correlation,
      severity: ok ? 'info' : 'warning',
      ...(ok ? {} : { error_code: reason }),
      event_data: {
        decision: ok ? 'allow' : 'deny',
        reason,
        ...(d.error ? { error: d.error } : {}),
        kind: d.kind ?? null,
        caller: d.caller,
        on_behalf_of: d.person ?? null,
        agent: d.agent ?? null,
        actors: d.actors,
        txn: d.txn ?? null,
        scope: scope ?? null,
        subject_token_sha256: d.subjectTokenSha256 ?? null,
        issued_token_sha256: d.issuedTokenSha256 ?? null,
        ...(refusal?.details !== undefined ? { details: refusal.details } : {}),
      },
    };
  });
}
