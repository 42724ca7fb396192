import { createHmac, hash as oneShotHash, randomUUID } from 'node:crypto';
import {
  COLUMNS,
  canonicalJson,
  type AuditEventInput,
  type StoredEvent,
} from '@precinct/audit-client';
import {
  MAX_EVENT_DATA_DEPTH,
  deeperThan,
  parseTimestamp,
  timestampMs,
  type InputProblem,
  type TimeWindow,
} from './input.js';

/** Bounds: one event's `event_data`, a batch, and (in the server) the request body. */
export const LIMITS = {
  eventDataBytes: 64 * 1024,
  batchEvents: 1000,
  bodyBytes: 8 * 1024 * 1024,
  shortString: 255,
  longString: 4096,
} as const;

const str = (max: number = LIMITS.shortString) => ({
  type: 'string',
  minLength: 1,
  maxLength: max,
});
const optStr = (max: number = LIMITS.shortString) => ({ type: 'string', maxLength: max });

/** JSON Schema of one event as written by a client (`AuditEventInput`). */
export const eventInputSchema = {
  $id: 'AuditEventInput',
  type: 'object',
  additionalProperties: false,
  required: ['event_type', 'event_category', 'event_action', 'event_outcome', 'correlation_id'],
  properties: {
    version: str(16),
    event_type: str(),
    event_timestamp: { type: 'string', format: 'date-time', maxLength: 64 },
    event_category: str(),
    event_action: str(),
    event_outcome: { type: 'string', enum: ['success', 'failure', 'pending'] },
    actor_type: optStr(),
    actor_id: optStr(),
    actor_ip: optStr(64),
    resource_type: optStr(),
    resource_id: optStr(),
    correlation_id: str(),
    parent_event_id: { type: 'string', format: 'uuid' },
    namespace: optStr(),
    cluster_id: optStr(),
    severity: { type: 'string', enum: ['debug', 'info', 'warning', 'error', 'critical'] },
    duration_ms: { type: 'integer', minimum: 0, maximum: 2147483647 },
    error_code: optStr(),
    error_message: optStr(LIMITS.longString),
    retention_days: { type: 'integer', minimum: 1, maximum: 36500 },
    is_sensitive: { type: 'boolean' },
    event_data: { type: 'object', additionalProperties: true },
  },
} as const;

const nullable = (t: string, extra: Record<string, unknown> = {}) => ({
  type: [t, 'null'],
  ...extra,
});

/** JSON Schema of a stored event as the API returns it. */
export const storedEventSchema = {
  $id: 'AuditEvent',
  type: 'object',
  required: [
    'event_id',
    'version',
    'event_type',
    'event_timestamp',
    'event_category',
    'event_action',
    'event_outcome',
    'correlation_id',
    'written_by',
    'written_by_kind',
    'chain_seq',
    'prev_hash',
    'event_hash',
  ],
  properties: {
    event_id: { type: 'string' },
    version: { type: 'string' },
    event_type: { type: 'string' },
    event_timestamp: { type: 'string', format: 'date-time' },
    event_category: { type: 'string' },
    event_action: { type: 'string' },
    event_outcome: { type: 'string' },
    actor_type: nullable('string'),
    actor_id: nullable('string'),
    actor_ip: nullable('string'),
    resource_type: nullable('string'),
    resource_id: nullable('string'),
    correlation_id: { type: 'string' },
    parent_event_id: nullable('string'),
    namespace: nullable('string'),
    cluster_id: nullable('string'),
    severity: nullable('string'),
    duration_ms: nullable('integer'),
    error_code: nullable('string'),
    error_message: nullable('string'),
    retention_days: { type: 'integer' },
    is_sensitive: { type: 'boolean' },
    event_data: { type: 'object', additionalProperties: true },
    written_by: { type: 'string' },
    written_by_kind: { type: 'string' },
    on_behalf_of: nullable('string'),
    chain_seq: { type: 'integer' },
    prev_hash: { type: 'string' },
    event_hash: { type: 'string' },
  },
} as const;

/** Who wrote an event, from the verified caller only. */
export type Writer = Pick<StoredEvent, 'written_by' | 'written_by_kind' | 'on_behalf_of'>;

/** Seven years, the common regulatory default (and Kubernaut's). */
export const DEFAULT_RETENTION_DAYS = 2555;

/** Validation beyond JSON Schema; returns `{field, message}` per problem. */
export function checkEvent(
  e: AuditEventInput,
  prefix = '',
  now: Date = new Date(),
  window: TimeWindow = DEFAULT_TIME_WINDOW,
): InputProblem[] {
  const bad: InputProblem[] = [];
  if (e.event_data !== undefined) {
    // Before anything recursive touches it: JSON.stringify, the canonical form and PostgreSQL's
    // jsonb input all recurse, and the JSON parser accepts any depth.
    if (deeperThan(e.event_data, MAX_EVENT_DATA_DEPTH))
      bad.push({
        field: `${prefix}event_data`,
        message: `must not nest deeper than ${MAX_EVENT_DATA_DEPTH} levels`,
      });
    else if (Buffer.byteLength(JSON.stringify(e.event_data)) > LIMITS.eventDataBytes)
      bad.push({
        field: `${prefix}event_data`,
        message: `must be at most ${LIMITS.eventDataBytes} bytes as JSON`,
      });
  }
  if (e.event_timestamp !== undefined) {
    const field = `${prefix}event_timestamp`;
    const t = timestampMs(e.event_timestamp);
    const retentionMs = (e.retention_days ?? DEFAULT_RETENTION_DAYS) * 86_400_000;
    if (t === undefined) bad.push({ field, message: 'must be an RFC 3339 date-time' });
    else if (t > now.getTime() + window.maxSkewMs)
      bad.push({
        field,
        message: `must not be more than ${Math.round(window.maxSkewMs / 1000)} s in the future`,
      });
    else if (t < now.getTime() - window.maxAgeMs)
      bad.push({
        field,
        message: `must not be more than ${Math.round(window.maxAgeMs / 86_400_000)} days in the past`,
      });
    else if (t <= now.getTime() - retentionMs)
      bad.push({ field, message: 'is already past the retention of the event (retention_days)' });
  }
  return bad;
}

/** The default window of accepted `event_timestamp`s: the default retention back, 5 min ahead. */
export const DEFAULT_TIME_WINDOW: TimeWindow = {
  maxAgeMs: DEFAULT_RETENTION_DAYS * 86_400_000,
  maxSkewMs: 5 * 60_000,
};

/** Fills defaults and attribution; the chain fields are set by the writing transaction. */
export function toRow(
  e: AuditEventInput,
  writer: Writer,
  now: Date,
): Omit<StoredEvent, 'chain_seq' | 'prev_hash' | 'event_hash'> {
  return {
    event_id: randomUUID(),
    version: e.version ?? '1.0',
    event_type: e.event_type,
    // Millisecond precision: what JavaScript and the canonical form can carry exactly.
    event_timestamp: (
      (e.event_timestamp && parseTimestamp(e.event_timestamp)) ||
      now
    ).toISOString(),
    event_category: e.event_category,
    event_action: e.event_action,
    event_outcome: e.event_outcome,
    actor_type: e.actor_type ?? null,
    actor_id: e.actor_id ?? null,
    actor_ip: e.actor_ip ?? null,
    resource_type: e.resource_type ?? null,
    resource_id: e.resource_id ?? null,
    correlation_id: e.correlation_id,
    parent_event_id: e.parent_event_id?.toLowerCase() ?? null,
    namespace: e.namespace ?? null,
    cluster_id: e.cluster_id ?? null,
    severity: e.severity ?? null,
    duration_ms: e.duration_ms ?? null,
    error_code: e.error_code ?? null,
    error_message: e.error_message ?? null,
    retention_days: e.retention_days ?? DEFAULT_RETENTION_DAYS,
    is_sensitive: e.is_sensitive ?? false,
    event_data: e.event_data ?? {},
    written_by: writer.written_by,
    written_by_kind: writer.written_by_kind,
    on_behalf_of: writer.on_behalf_of,
  };
}

/** A database row (Date timestamps, driver types) as a StoredEvent. */
export function fromDbRow(r: Record<string, unknown>): StoredEvent {
  const out: Record<string, unknown> = {};
  for (const c of COLUMNS) {
    const v = r[c];
    out[c] = v instanceof Date ? v.toISOString() : v === undefined ? null : v;
  }
  out.duration_ms = r.duration_ms === null ? null : Number(r.duration_ms);
  out.chain_seq = Number(r.chain_seq);
  out.retention_days = Number(r.retention_days);
  return out as unknown as StoredEvent;
}

/**
 * An event's canonical form (see `linkHash`) with its two chain fields left open: everything
 * but `chain_seq` and `prev_hash` is known before the writing transaction locks the chain head,
 * so this part of the work is done outside it.
 */
export interface LinkTemplate {
  /** From `{` up to and including `"chain_seq":`. */
  readonly pre: string;
  /** From after the `chain_seq` value up to and including `"prev_hash":`. */
  readonly mid: string;
  /** From after the `prev_hash` value to the closing `}`. */
  readonly post: string;
}

export function linkTemplate(
  e: Omit<StoredEvent, 'chain_seq' | 'prev_hash' | 'event_hash'>,
): LinkTemplate {
  // The members in canonical (sorted) key order, written out: this runs for every event, and
  // property reads by name are much cheaper than by computed key. `member` leaves out an
  // undefined value, as canonicalJson does. test/hash-pin.test.ts holds this to linkHash.
  const pre = [
    member('"actor_id":', e.actor_id),
    member('"actor_ip":', e.actor_ip),
    member('"actor_type":', e.actor_type),
  ];
  const mid = [
    member('"cluster_id":', e.cluster_id),
    member('"correlation_id":', e.correlation_id),
    member('"duration_ms":', e.duration_ms),
    member('"error_code":', e.error_code),
    member('"error_message":', e.error_message),
    member('"event_action":', e.event_action),
    member('"event_category":', e.event_category),
    member('"event_data":', e.event_data),
    member('"event_id":', e.event_id),
    member('"event_outcome":', e.event_outcome),
    member('"event_timestamp":', e.event_timestamp),
    member('"event_type":', e.event_type),
    member('"is_sensitive":', e.is_sensitive),
    member('"namespace":', e.namespace),
    member('"on_behalf_of":', e.on_behalf_of),
    member('"parent_event_id":', e.parent_event_id),
  ];
  const post = [
    member('"resource_id":', e.resource_id),
    member('"resource_type":', e.resource_type),
    member('"retention_days":', e.retention_days),
    member('"severity":', e.severity),
    member('"version":', e.version),
    member('"written_by":', e.written_by),
    member('"written_by_kind":', e.written_by_kind),
  ];
  const p = present(pre);
  const m = present(mid);
  const q = present(post);
  return {
    pre: `{${p.length ? `${p.join(',')},` : ''}"chain_seq":`,
    mid: `,${m.length ? `${m.join(',')},` : ''}"prev_hash":`,
    post: `${q.length ? `,${q.join(',')}` : ''}}`,
  };
}

/** `"key":value` of one canonical member, or '' for an undefined value (left out). */
function member(keyJson: string, v: unknown): string {
  return v === undefined ? '' : keyJson + canonicalJson(v);
}
/** The members that are there. */
const present = (ms: string[]) => (ms.includes('') ? ms.filter((x) => x !== '') : ms);

/** `linkHash` of the templated event with these chain fields; the same bytes, faster. */
export function templateHash(
  t: LinkTemplate,
  chainSeq: number,
  prevHash: string,
  key?: Buffer,
): string {
  const data = `${prevHash}\n${t.pre}${canonicalJson(chainSeq)}${t.mid}${canonicalJson(prevHash)}${t.post}`;
  // crypto.hash: the same digest as createHash(...).update(data) (UTF-8), without the object.
  return key
    ? createHmac('sha256', key).update(data).digest('hex')
    : oneShotHash('sha256', data, 'hex');
}

// The chain format lives in @precinct/audit-client (one source of truth for writers, the store
// and offline verifiers); the store's modules import it from here.
export {
  COLUMNS,
  GENESIS_HASH,
  canonicalJson,
  linkHash,
  type AuditEventInput,
  type EventOutcome,
  type StoredEvent,
} from '@precinct/audit-client';
