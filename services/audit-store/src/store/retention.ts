// Legal holds and retention: what is kept, and the only path by which events are deleted
// (a prefix of a chain past its retention, never under hold), and old idempotency keys.
import type { Db, Queryable } from '../db.js';

export interface LegalHold {
  correlation_id: string;
  reason: string;
  placed_by: string;
  placed_at: string;
}

/** Legal holds, the retention job and the expiry of idempotency keys. */
export class Retention {
  constructor(private readonly db: Db) {}

  /** Forgets idempotency keys older than `ttlMs`; a retry after that writes again. */
  async expireIdempotencyKeys(now: Date, ttlMs: number): Promise<number> {
    const r = await this.db.query(
      'DELETE FROM audit_idempotency_keys WHERE created_at < $1::timestamptz',
      [new Date(now.getTime() - ttlMs).toISOString()],
    );
    return r.rowCount;
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
