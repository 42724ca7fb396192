// The store's storage operations, one object per store over three modules: the write path
// (store/write.ts), reads and chain verification (store/reads.ts), legal holds and retention
// (store/retention.ts).
import type { Db } from './db.js';
import type { AuditEventInput, StoredEvent, Writer } from './events.js';
import { EventReader, type EventFilter, type VerifyResult } from './store/reads.js';
import { Retention, type LegalHold } from './store/retention.js';
import { ChainWriter, type WriteReceipt } from './store/write.js';

export { FILTER_FIELDS, type EventFilter, type VerifyResult } from './store/reads.js';
export type { LegalHold } from './store/retention.js';
export type { WriteReceipt } from './store/write.js';

/** The storage operations; one instance per store. */
export class AuditRepository {
  private readonly writer: ChainWriter;
  private readonly reader: EventReader;
  private readonly retention: Retention;

  constructor(db: Db, hashKey?: Buffer, log?: { warn(o: object, m: string): void }) {
    this.writer = new ChainWriter(db, hashKey, log);
    this.reader = new EventReader(db, hashKey);
    this.retention = new Retention(db);
  }

  /** See `ChainWriter.insert`: appends events, all or nothing; resolves after COMMIT. */
  insert(
    events: AuditEventInput[],
    writer: Writer,
    now?: Date,
    idempotency?: { key: string; requestHash: string },
  ): Promise<{ events: WriteReceipt[]; replayed: boolean }> {
    return this.writer.insert(events, writer, now, idempotency);
  }

  /** Creates the month's partition of `ts` unless it exists. */
  ensurePartition(ts: Date): Promise<void> {
    return this.writer.ensurePartition(ts);
  }

  /** The partition job: this month's partition and the `ahead` months after it. */
  ensurePartitionsAhead(now: Date, ahead: number): Promise<void> {
    return this.writer.ensurePartitionsAhead(now, ahead);
  }

  /** Newest first, keyset-paginated on (event_timestamp, event_id). */
  query(
    f: EventFilter,
    page: { limit: number; offset?: number; after?: { ts: string; id: string } },
  ): Promise<{ events: StoredEvent[]; hasMore: boolean }> {
    return this.reader.query(f, page);
  }

  /** Oldest first, in pages, for the export. */
  scan(f: EventFilter, pageSize?: number): AsyncGenerator<StoredEvent> {
    return this.reader.scan(f, pageSize);
  }

  /** Recomputes every link of a correlation's chain (tampered events, broken links). */
  verify(correlationId: string): Promise<VerifyResult> {
    return this.reader.verify(correlationId);
  }

  placeHold(correlationId: string, reason: string, placedBy: string): Promise<LegalHold> {
    return this.retention.placeHold(correlationId, reason, placedBy);
  }

  listHolds(): Promise<LegalHold[]> {
    return this.retention.listHolds();
  }

  releaseHold(correlationId: string): Promise<boolean> {
    return this.retention.releaseHold(correlationId);
  }

  /** The retention job: deletes chain prefixes past retention; returns how many events. */
  applyRetention(now?: Date, maxCorrelations?: number): Promise<number> {
    return this.retention.applyRetention(now, maxCorrelations);
  }

  /** Forgets idempotency keys older than `ttlMs`; a retry after that writes again. */
  expireIdempotencyKeys(now: Date, ttlMs: number): Promise<number> {
    return this.retention.expireIdempotencyKeys(now, ttlMs);
  }
}
