// Reads: events by filter (newest first, or oldest first for an export) and the verification
// of a correlation's chain from the stored columns.
import type { AuditEventFilter } from '@precinct/audit-client';
import type { Db } from '../db.js';
import { COLUMNS, GENESIS_HASH, fromDbRow, linkHash, type StoredEvent } from '../events.js';

/** Filters of GET /api/v1/audit/events (and the export): the client's type, one definition. */
export type EventFilter = AuditEventFilter;

export const FILTER_FIELDS = [
  'event_type',
  'event_category',
  'event_outcome',
  'severity',
  'correlation_id',
  'actor_id',
  'resource_type',
  'resource_id',
  'namespace',
  'written_by',
  'person',
  'agent',
  'txn',
] as const;

export interface VerifyResult {
  correlation_id: string;
  is_valid: boolean;
  events_checked: number;
  broken_links: Array<{
    event_id: string | null;
    chain_seq: number | null;
    reason: string;
  }>;
  tampered_events: string[];
}

/** The read operations; stateless. */
export class EventReader {
  constructor(
    private readonly db: Db,
    private readonly hashKey?: Buffer,
  ) {}

  private where(f: EventFilter, params: unknown[]): string[] {
    const conds: string[] = [];
    for (const k of FILTER_FIELDS) {
      const v = f[k];
      if (v !== undefined) {
        params.push(v);
        // A Transaction Token's txn is sent as the correlation id (the demo's services do) or
        // in event_data.txn (then the correlation may be something else): both are the txn.
        conds.push(
          k === 'txn'
            ? `(txn = $${params.length} OR correlation_id = $${params.length})`
            : `${k} = $${params.length}`,
        );
      }
    }
    if (f.since !== undefined) {
      params.push(new Date(f.since).toISOString());
      conds.push(`event_timestamp >= $${params.length}::timestamptz`);
    }
    if (f.until !== undefined) {
      params.push(new Date(f.until).toISOString());
      conds.push(`event_timestamp < $${params.length}::timestamptz`);
    }
    return conds;
  }

  /** Newest first, keyset-paginated on (event_timestamp, event_id). */
  async query(
    f: EventFilter,
    page: { limit: number; offset?: number; after?: { ts: string; id: string } },
  ): Promise<{ events: StoredEvent[]; hasMore: boolean }> {
    const params: unknown[] = [];
    const conds = this.where(f, params);
    if (page.after) {
      params.push(page.after.ts, page.after.id);
      conds.push(
        `(event_timestamp, event_id) < ($${params.length - 1}::timestamptz, $${params.length}::uuid)`,
      );
    }
    params.push(page.limit + 1, page.offset ?? 0);
    const r = await this.db.query(
      `SELECT ${COLUMNS.join(',')} FROM audit_events ${conds.length ? `WHERE ${conds.join(' AND ')}` : ''}
       ORDER BY event_timestamp DESC, event_id DESC LIMIT $${params.length - 1} OFFSET $${params.length}`,
      params,
    );
    const events = r.rows.map(fromDbRow);
    const hasMore = events.length > page.limit;
    return { events: hasMore ? events.slice(0, page.limit) : events, hasMore };
  }

  /** Oldest first, in pages, for the export. */
  async *scan(f: EventFilter, pageSize = 1000): AsyncGenerator<StoredEvent> {
    let after: { ts: string; id: string } | undefined;
    for (;;) {
      const params: unknown[] = [];
      const conds = this.where(f, params);
      if (after) {
        params.push(after.ts, after.id);
        conds.push(
          `(event_timestamp, event_id) > ($${params.length - 1}::timestamptz, $${params.length}::uuid)`,
        );
      }
      params.push(pageSize);
      const r = await this.db.query(
        `SELECT ${COLUMNS.join(',')} FROM audit_events ${conds.length ? `WHERE ${conds.join(' AND ')}` : ''}
         ORDER BY event_timestamp ASC, event_id ASC LIMIT $${params.length}`,
        params,
      );
      const events = r.rows.map(fromDbRow);
      for (const e of events) yield e;
      if (events.length < pageSize) return;
      const last = events[events.length - 1]!;
      after = { ts: last.event_timestamp, id: last.event_id };
    }
  }

  /**
   * Recomputes every link of a correlation's chain from the stored columns: a hash that does
   * not match its row is a tampered event; a `prev_hash` or sequence number that does not
   * follow its predecessor (or the chain head) is a broken link (deleted, inserted or
   * reordered rows).
   */
  async verify(correlationId: string): Promise<VerifyResult> {
    const head = await this.db.query<{
      seq: number;
      last_hash: string;
      pruned_seq: number;
      pruned_hash: string | null;
    }>(
      'SELECT seq, last_hash, pruned_seq, pruned_hash FROM audit_chain_heads WHERE correlation_id = $1',
      [correlationId],
    );
    const r = await this.db.query(
      `SELECT ${COLUMNS.join(',')} FROM audit_events WHERE correlation_id = $1 ORDER BY chain_seq ASC, event_timestamp ASC`,
      [correlationId],
    );
    const res: VerifyResult = {
      correlation_id: correlationId,
      is_valid: true,
      events_checked: 0,
      broken_links: [],
      tampered_events: [],
    };
    const h = head.rows[0];
    let prevHash = h && Number(h.pruned_seq) > 0 && h.pruned_hash ? h.pruned_hash : GENESIS_HASH;
    let nextSeq = h ? Number(h.pruned_seq) + 1 : 1;
    for (const raw of r.rows) {
      const e = fromDbRow(raw);
      res.events_checked += 1;
      if (linkHash(e, this.hashKey) !== e.event_hash) res.tampered_events.push(e.event_id);
      if (e.chain_seq !== nextSeq || e.prev_hash !== prevHash) {
        res.broken_links.push({
          event_id: e.event_id,
          chain_seq: e.chain_seq,
          reason:
            e.chain_seq !== nextSeq
              ? `expected chain_seq ${nextSeq}, found ${e.chain_seq}`
              : 'prev_hash does not match the previous event',
        });
      }
      prevHash = e.event_hash;
      nextSeq = e.chain_seq + 1;
    }
    if (!h && r.rows.length > 0) {
      res.broken_links.push({ event_id: null, chain_seq: null, reason: 'chain head missing' });
    } else if (h && (Number(h.seq) !== nextSeq - 1 || h.last_hash !== prevHash)) {
      res.broken_links.push({
        event_id: null,
        chain_seq: Number(h.seq),
        reason: 'chain head does not match the last stored event (events missing at the end)',
      });
    }
    res.is_valid = res.broken_links.length === 0 && res.tampered_events.length === 0;
    return res;
  }
}
