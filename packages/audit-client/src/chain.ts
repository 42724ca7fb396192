// The chain format: what a stored event is, its canonical form and the hash that links it to
// its predecessor. Every stored `event_hash` and every export verified offline depends on these
// bytes: they must never change (services/audit-store/test/hash-pin.test.ts pins them).
import { createHash, createHmac } from 'node:crypto';

/** The outcome of an audited action. */
export type EventOutcome = 'success' | 'failure' | 'pending';

/** An event as a client sends it (Kubernaut DataStorage field names). */
export interface AuditEventInput {
  version?: string;
  event_type: string;
  event_timestamp?: string;
  event_category: string;
  event_action: string;
  event_outcome: EventOutcome;
  actor_type?: string;
  actor_id?: string;
  actor_ip?: string;
  resource_type?: string;
  resource_id?: string;
  correlation_id: string;
  parent_event_id?: string;
  namespace?: string;
  cluster_id?: string;
  severity?: string;
  duration_ms?: number;
  error_code?: string;
  error_message?: string;
  retention_days?: number;
  is_sensitive?: boolean;
  /**
   * Free-form details. A delegated decision names its person in `on_behalf_of`, its actor
   * chain (outermost first) in `actors` or its agent in `agent`, and its transaction in `txn`:
   * the store indexes these for queries by person, agent and txn.
   */
  event_data?: Record<string, unknown>;
}

/**
 * A stored event: every column, nulls for absent optional fields. `written_by`,
 * `written_by_kind` and `on_behalf_of` come from the store's verification of the writer, never
 * from the event.
 */
export interface StoredEvent {
  event_id: string;
  version: string;
  event_type: string;
  event_timestamp: string;
  event_category: string;
  event_action: string;
  event_outcome: string;
  actor_type: string | null;
  actor_id: string | null;
  actor_ip: string | null;
  resource_type: string | null;
  resource_id: string | null;
  correlation_id: string;
  parent_event_id: string | null;
  namespace: string | null;
  cluster_id: string | null;
  severity: string | null;
  duration_ms: number | null;
  error_code: string | null;
  error_message: string | null;
  retention_days: number;
  is_sensitive: boolean;
  event_data: Record<string, unknown>;
  written_by: string;
  written_by_kind: string;
  on_behalf_of: string | null;
  chain_seq: number;
  prev_hash: string;
  event_hash: string;
}

/** The columns of a stored event, in table (and insert) order; all but `event_hash` are hashed. */
export const COLUMNS = [
  'event_id',
  'version',
  'event_type',
  'event_timestamp',
  'event_category',
  'event_action',
  'event_outcome',
  'actor_type',
  'actor_id',
  'actor_ip',
  'resource_type',
  'resource_id',
  'correlation_id',
  'parent_event_id',
  'namespace',
  'cluster_id',
  'severity',
  'duration_ms',
  'error_code',
  'error_message',
  'retention_days',
  'is_sensitive',
  'event_data',
  'written_by',
  'written_by_kind',
  'on_behalf_of',
  'chain_seq',
  'prev_hash',
  'event_hash',
] as const satisfies ReadonlyArray<keyof StoredEvent>;

/** `prev_hash` of the first event of a chain. */
export const GENESIS_HASH = '0'.repeat(64);

/**
 * Strings JSON.stringify writes as they are, between quotes: no `"`, `\`, control character
 * (below U+0020) or surrogate (it escapes lone ones; paired ones take the slow path too).
 */
// eslint-disable-next-line no-control-regex -- control characters are what JSON escapes
const PLAIN_STRING = /^[^"\\\u0000-\u001f\ud800-\udfff]*$/;

/** JSON.stringify of a string, skipping its escaping pass when there is nothing to escape. */
function jsonString(s: string): string {
  return PLAIN_STRING.test(s) ? `"${s}"` : JSON.stringify(s);
}

/**
 * JSON with object keys sorted at every depth; no whitespace; object members whose value is
 * `undefined` left out, other values JSON.stringify would drop written as `null`. Part of every
 * stored hash: its output must never change (the store's hash-pin test pins it, and checks it
 * against the first, array-method version on random values). Written with loops only because
 * it runs for every event of every write.
 */
export function canonicalJson(v: unknown): string {
  if (typeof v === 'string') return jsonString(v);
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) {
    let s = '[';
    for (let i = 0; i < v.length; i++) {
      if (i > 0) s += ',';
      // A hole of a sparse array: `map` skipped it and `join` wrote nothing.
      if (i in v) s += canonicalJson(v[i]);
    }
    return `${s}]`;
  }
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o).sort();
  let s = '{';
  for (const k of keys) {
    const x = o[k];
    if (x === undefined) continue;
    if (s.length > 1) s += ',';
    s += `${jsonString(k)}:${canonicalJson(x)}`;
  }
  return `${s}}`;
}

/**
 * The hash of one chain link: hex SHA-256 (or HMAC-SHA256 with `key`, when the store was given
 * a hash key) of `prev_hash + "\n" + canonicalJson(every column except event_hash)`. An event
 * of an export verifies when this equals its `event_hash` and its `prev_hash` is the previous
 * event's `event_hash` (GENESIS_HASH for the first of a correlation).
 */
export function linkHash(
  e: Omit<StoredEvent, 'event_hash'> & { event_hash?: string },
  key?: Buffer,
): string {
  const fields: Record<string, unknown> = {};
  for (const c of COLUMNS) if (c !== 'event_hash') fields[c] = e[c];
  const data = `${e.prev_hash}\n${canonicalJson(fields)}`;
  return (key ? createHmac('sha256', key) : createHash('sha256')).update(data).digest('hex');
}
