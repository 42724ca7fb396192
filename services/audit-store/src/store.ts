import type { Db, Queryable } from './db.js';
import { AuditStoreError } from './errors.js';
import {
  COLUMNS,
  GENESIS_HASH,
  fromDbRow,
  linkHash,
  linkTemplate,
  templateHash,
  toRow,
  type AuditEventInput,
  type StoredEvent,
  type Writer,
} from './events.js';

/** The columns known before the chain head is read, in COLUMNS order. */
const DATA_COLUMNS = COLUMNS.filter(
  (c): c is Exclude<(typeof COLUMNS)[number], 'chain_seq' | 'prev_hash' | 'event_hash'> =>
    c !== 'chain_seq' && c !== 'prev_hash' && c !== 'event_hash',
);
/** SQL types of the audit_events columns (migration 1). */
const TYPE: Record<(typeof DATA_COLUMNS)[number], string> = {
  event_id: 'uuid',
  version: 'text',
  event_type: 'text',
  event_timestamp: 'timestamptz',
  event_category: 'text',
  event_action: 'text',
  event_outcome: 'text',
  actor_type: 'text',
  actor_id: 'text',
  actor_ip: 'text',
  resource_type: 'text',
  resource_id: 'text',
  correlation_id: 'text',
  parent_event_id: 'uuid',
  namespace: 'text',
  cluster_id: 'text',
  severity: 'text',
  duration_ms: 'integer',
  error_code: 'text',
  error_message: 'text',
  retention_days: 'integer',
  is_sensitive: 'boolean',
  event_data: 'jsonb',
  written_by: 'text',
  written_by_kind: 'text',
  on_behalf_of: 'text',
};

/** Filters of GET /api/v1/audit/events (and the export). */
export interface EventFilter {
  event_type?: string;
  event_category?: string;
  event_outcome?: string;
  severity?: string;
  correlation_id?: string;
  actor_id?: string;
  resource_type?: string;
  resource_id?: string;
  namespace?: string;
  written_by?: string;
  since?: string;
  until?: string;
}

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

/** What a write returns per event, and what an idempotent replay returns again. */
export interface WriteReceipt {
  event_id: string;
  event_timestamp: string;
  correlation_id: string;
  chain_seq: number;
  event_hash: string;
  written_by: string;
}

export interface LegalHold {
  correlation_id: string;
  reason: string;
  placed_by: string;
  placed_at: string;
}

const NEEDS_ESCAPE = /["\\]/;

/**
 * A PostgreSQL array literal (`{"a","b",NULL}`) of strings, numbers and booleans, for an
 * `$n::type[]` parameter. Both drivers pass a string parameter through as its text, so this does
 * the per-element quoting once, up front, instead of the driver doing it for every query.
 * Every element is quoted; inside quotes only `"` and `\` need a backslash.
 */
export function arrayLiteral(values: ReadonlyArray<string | number | boolean | null>): string {
  let out = '{';
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (i > 0) out += ',';
    if (v === null || v === undefined) out += 'NULL';
    else {
      const t = String(v);
      out += NEEDS_ESCAPE.test(t) ? `"${t.replace(/["\\]/g, '\\$&')}"` : `"${t}"`;
    }
  }
  return `${out}}`;
}

function monthStart(d: Date): Date {
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1));
}

/** The storage operations; one instance per store. */
export class AuditRepository {
  private readonly partitions = new Set<string>();
  constructor(
    private readonly db: Db,
    private readonly hashKey?: Buffer,
    private readonly log?: { warn(o: object, m: string): void },
  ) {}

  /**
   * Creates the month's partition unless it exists. Outside the writing transaction: DDL takes
   * strong locks, and once per month is enough. Rows that arrive for a month whose partition
   * cannot be created (the default partition already holds rows of that month) stay in the
   * default partition, which is correct, only less tidy.
   */
  async ensurePartition(ts: Date): Promise<void> {
    const from = monthStart(ts);
    const name = `audit_events_p${from.getUTCFullYear()}${String(from.getUTCMonth() + 1).padStart(2, '0')}`;
    if (this.partitions.has(name)) return;
    const to = new Date(Date.UTC(from.getUTCFullYear(), from.getUTCMonth() + 1, 1));
    try {
      await this.db.query(
        `CREATE TABLE IF NOT EXISTS ${name} PARTITION OF audit_events FOR VALUES FROM ('${from.toISOString()}') TO ('${to.toISOString()}')`,
      );
    } catch (err) {
      const code = err instanceof AuditStoreError ? err.code : '';
      if (code === 'ERR_DB_UNAVAILABLE') throw err;
      // Lost a race with another store (already exists) or the default partition has rows of
      // that month: either way the rows have a home.
      this.log?.warn({ partition: name, err: (err as Error).message }, 'partition not created');
    }
    this.partitions.add(name);
  }

  /**
   * Appends events (all or nothing) and chains each under its correlation's chain-head row,
   * locked FOR UPDATE (via the upsert) in sorted order so concurrent batches cannot deadlock
   * or fork a chain. Resolves only after COMMIT.
   *
   * With an idempotency key, the key row is claimed first in the same transaction: a retry of a
   * request that committed gets the first response back (`replayed`) and writes nothing; a
   * concurrent duplicate waits on the first one's row lock and then replays; the same key with
   * a different request is refused (ERR_IDEMPOTENCY_CONFLICT).
   */
  async insert(
    events: AuditEventInput[],
    writer: Writer,
    now = new Date(),
    idempotency?: { key: string; requestHash: string },
  ): Promise<{ events: WriteReceipt[]; replayed: boolean }> {
    const rows = events.map((e) => toRow(e, writer, now));
    const months = new Set(rows.map((r) => monthStart(new Date(r.event_timestamp)).getTime()));
    for (const m of months) await this.ensurePartition(new Date(m));
    const corrs = [...new Set(rows.map((r) => r.correlation_id))].sort();
    // Everything that does not depend on the chain heads is prepared before the transaction
    // locks them: the canonical form of each event (all but its chain fields) and the columns.
    const templates = rows.map(linkTemplate);
    const columns = DATA_COLUMNS.map((c) =>
      arrayLiteral(
        c === 'event_data' ? rows.map((r) => JSON.stringify(r.event_data)) : rows.map((r) => r[c]),
      ),
    );
    return this.db.transaction(async (tx) => {
      if (idempotency) {
        const claimed = await tx.query(
          `INSERT INTO audit_idempotency_keys (written_by, idempotency_key, request_hash)
           VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING 1`,
          [writer.written_by, idempotency.key, idempotency.requestHash],
        );
        if (claimed.rows.length === 0) {
          const prior = await tx.query<{ request_hash: string; response: WriteReceipt[] }>(
            `SELECT request_hash, response FROM audit_idempotency_keys
             WHERE written_by = $1 AND idempotency_key = $2`,
            [writer.written_by, idempotency.key],
          );
          const p = prior.rows[0];
          if (!p || !p.response || p.request_hash !== idempotency.requestHash)
            throw new AuditStoreError(
              'ERR_IDEMPOTENCY_CONFLICT',
              'idempotency key already used for a different request',
            );
          return { events: p.response, replayed: true };
        }
      }
      // Creates missing heads and locks every head of the batch, one row after another in the
      // order of `corrs` (WITH ORDINALITY ... ORDER BY keeps it), so that two batches lock their
      // common correlations in the same order and cannot deadlock.
      const r = await tx.query<{ correlation_id: string; seq: number; last_hash: string }>(
        `INSERT INTO audit_chain_heads (correlation_id, seq, last_hash)
         SELECT c, 0, $1 FROM unnest($2::text[]) WITH ORDINALITY AS v(c, n) ORDER BY n
         ON CONFLICT (correlation_id) DO UPDATE SET seq = audit_chain_heads.seq
         RETURNING correlation_id, seq, last_hash`,
        [GENESIS_HASH, arrayLiteral(corrs)],
      );
      const heads = new Map<string, { seq: number; hash: string }>();
      for (const h of r.rows)
        heads.set(h.correlation_id, { seq: Number(h.seq), hash: h.last_hash });
      const chainSeq: number[] = new Array(rows.length);
      const prevHash: string[] = new Array(rows.length);
      const eventHash: string[] = new Array(rows.length);
      for (let i = 0; i < rows.length; i++) {
        const head = heads.get(rows[i]!.correlation_id)!;
        head.seq += 1;
        chainSeq[i] = head.seq;
        prevHash[i] = head.hash;
        head.hash = eventHash[i] = templateHash(templates[i]!, head.seq, head.hash, this.hashKey);
      }
      const hc: string[] = [];
      const hs: number[] = [];
      const hh: string[] = [];
      for (const [c, h] of heads) {
        hc.push(c);
        hs.push(h.seq);
        hh.push(h.hash);
      }
      const params = [...columns, ...[chainSeq, prevHash, eventHash, hc, hs, hh].map(arrayLiteral)];
      const n = params.length;
      // One statement, one round trip: the events (one array parameter per column) and the
      // new chain heads.
      await tx.query(
        `WITH ins AS (
           INSERT INTO audit_events (${[...DATA_COLUMNS, 'chain_seq', 'prev_hash', 'event_hash'].join(',')})
           SELECT * FROM unnest(${[...DATA_COLUMNS.map((c) => TYPE[c]), 'integer', 'text', 'text']
             .map((t, i) => `$${i + 1}::${t}[]`)
             .join(',')})
         )
         UPDATE audit_chain_heads h SET seq = v.seq, last_hash = v.hash
         FROM unnest($${n - 2}::text[], $${n - 1}::integer[], $${n}::text[]) AS v(c, seq, hash)
         WHERE h.correlation_id = v.c`,
        params,
      );
      const receipts: WriteReceipt[] = rows.map((e, i) => ({
        event_id: e.event_id,
        event_timestamp: e.event_timestamp,
        correlation_id: e.correlation_id,
        chain_seq: chainSeq[i]!,
        event_hash: eventHash[i]!,
        written_by: e.written_by,
      }));
      if (idempotency)
        await tx.query(
          `UPDATE audit_idempotency_keys SET response = $3::jsonb
           WHERE written_by = $1 AND idempotency_key = $2`,
          [writer.written_by, idempotency.key, JSON.stringify(receipts)],
        );
      return { events: receipts, replayed: false };
    });
  }

  /** Forgets idempotency keys older than `ttlMs`; a retry after that writes again. */
  async expireIdempotencyKeys(now: Date, ttlMs: number): Promise<number> {
    const r = await this.db.query(
      'DELETE FROM audit_idempotency_keys WHERE created_at < $1::timestamptz',
      [new Date(now.getTime() - ttlMs).toISOString()],
    );
    return r.rowCount;
  }

  private where(f: EventFilter, params: unknown[]): string[] {
    const conds: string[] = [];
    for (const k of FILTER_FIELDS) {
      const v = f[k];
      if (v !== undefined) {
        params.push(v);
        conds.push(`${k} = $${params.length}`);
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

  async placeHold(correlationId: string, reason: string, placedBy: string): Promise<LegalHold> {
    const r = await this.db.query<{ placed_at: Date; reason: string; placed_by: string }>(
      `INSERT INTO audit_legal_holds (correlation_id, reason, placed_by) VALUES ($1, $2, $3)
       ON CONFLICT (correlation_id) DO UPDATE SET reason = EXCLUDED.reason
       RETURNING placed_at, reason, placed_by`,
      [correlationId, reason, placedBy],
    );
    const row = r.rows[0]!;
    return {
      correlation_id: correlationId,
      reason: row.reason,
      placed_by: row.placed_by,
      placed_at: new Date(row.placed_at).toISOString(),
    };
  }

  async listHolds(): Promise<LegalHold[]> {
    const r = await this.db.query<{
      correlation_id: string;
      reason: string;
      placed_by: string;
      placed_at: Date;
    }>(
      'SELECT correlation_id, reason, placed_by, placed_at FROM audit_legal_holds ORDER BY placed_at, correlation_id',
    );
    return r.rows.map((h) => ({ ...h, placed_at: new Date(h.placed_at).toISOString() }));
  }

  async releaseHold(correlationId: string): Promise<boolean> {
    const r = await this.db.query('DELETE FROM audit_legal_holds WHERE correlation_id = $1', [
      correlationId,
    ]);
    return r.rowCount > 0;
  }

  /**
   * The retention path: for each correlation not under legal hold, deletes the prefix of its
   * chain whose events are past retention (stopping at the first event still retained, so a
   * chain never gets a hole) and records the last deleted hash in the chain head, from which
   * verification continues. Returns the number of events deleted.
   */
  async applyRetention(now = new Date(), maxCorrelations = 1000): Promise<number> {
    const cands = await this.db.query<{ correlation_id: string }>(
      `SELECT DISTINCT e.correlation_id FROM audit_events e
       WHERE e.event_timestamp + make_interval(days => e.retention_days) <= $1::timestamptz
         AND NOT EXISTS (SELECT 1 FROM audit_legal_holds h WHERE h.correlation_id = e.correlation_id)
       LIMIT $2`,
      [now.toISOString(), maxCorrelations],
    );
    let deleted = 0;
    for (const { correlation_id } of cands.rows) {
      deleted += await this.db.transaction((tx) => pruneChain(tx, correlation_id, now));
    }
    return deleted;
  }
}

async function pruneChain(tx: Queryable, correlationId: string, now: Date): Promise<number> {
  // The head lock keeps writers of this correlation out while its prefix goes.
  const head = await tx.query<{ seq: number; pruned_seq: number }>(
    'SELECT seq, pruned_seq FROM audit_chain_heads WHERE correlation_id = $1 FOR UPDATE',
    [correlationId],
  );
  if (!head.rows[0]) return 0;
  const hold = await tx.query('SELECT 1 FROM audit_legal_holds WHERE correlation_id = $1', [
    correlationId,
  ]);
  if (hold.rows.length > 0) return 0;
  const keep = await tx.query<{ min: number | null }>(
    `SELECT min(chain_seq) AS min FROM audit_events WHERE correlation_id = $1
       AND event_timestamp + make_interval(days => retention_days) > $2::timestamptz`,
    [correlationId, now.toISOString()],
  );
  const cutoff =
    keep.rows[0]?.min != null ? Number(keep.rows[0].min) : Number(head.rows[0].seq) + 1;
  if (cutoff - 1 <= Number(head.rows[0].pruned_seq)) return 0;
  const last = await tx.query<{ event_hash: string }>(
    'SELECT event_hash FROM audit_events WHERE correlation_id = $1 AND chain_seq = $2',
    [correlationId, cutoff - 1],
  );
  if (!last.rows[0]) return 0;
  await tx.query("SELECT set_config('precinct.audit_retention', 'on', true)");
  const del = await tx.query(
    'DELETE FROM audit_events WHERE correlation_id = $1 AND chain_seq < $2',
    [correlationId, cutoff],
  );
  await tx.query(
    'UPDATE audit_chain_heads SET pruned_seq = $2, pruned_hash = $3 WHERE correlation_id = $1',
    [correlationId, cutoff - 1, last.rows[0].event_hash],
  );
  return del.rowCount;
}
