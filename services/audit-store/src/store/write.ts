// The write path: a batch's rows and canonical forms prepared outside the transaction, its
// correlations' chain heads locked in sorted order, one statement writing events and heads.
import type { Db } from '../db.js';
import { AuditStoreError } from '../errors.js';
import {
  type COLUMNS,
  GENESIS_HASH,
  linkTemplate,
  templateHash,
  toRow,
  type AuditEventInput,
  type LinkTemplate,
  type Writer,
} from '../events.js';

type DataColumn = Exclude<
  (typeof COLUMNS)[number],
  'chain_seq' | 'prev_hash' | 'event_hash' | 'event_data'
>;
/**
 * The columns known before the chain heads are read, but event_data, with their SQL types
 * (migration 1), in COLUMNS order.
 */
const DATA_COLUMNS: ReadonlyArray<readonly [DataColumn, string]> = [
  ['event_id', 'uuid'],
  ['version', 'text'],
  ['event_type', 'text'],
  ['event_timestamp', 'timestamptz'],
  ['event_category', 'text'],
  ['event_action', 'text'],
  ['event_outcome', 'text'],
  ['actor_type', 'text'],
  ['actor_id', 'text'],
  ['actor_ip', 'text'],
  ['resource_type', 'text'],
  ['resource_id', 'text'],
  ['correlation_id', 'text'],
  ['parent_event_id', 'uuid'],
  ['namespace', 'text'],
  ['cluster_id', 'text'],
  ['severity', 'text'],
  ['duration_ms', 'integer'],
  ['error_code', 'text'],
  ['error_message', 'text'],
  ['retention_days', 'integer'],
  ['is_sensitive', 'boolean'],
  ['written_by', 'text'],
  ['written_by_kind', 'text'],
  ['on_behalf_of', 'text'],
];

/**
 * The statement that writes a batch's events and its new chain heads: one statement, one round
 * trip while the heads are locked. A column whose value differs between the batch's events is
 * one array parameter; a column with one value for the whole batch (the writer's columns, and
 * often defaults, nulls, the arrival time) is one scalar parameter, so PostgreSQL has less
 * to parse. Parameters, in order: the varying columns' arrays, the chain_seq, prev_hash and
 * event_hash arrays, every event_data as one JSON array (all zipped into rows by ROWS FROM),
 * the constant columns' values, then the new heads as three arrays.
 */
function insertEventsSql(varying: readonly boolean[], idempotency: boolean): string {
  const key = `${idempotency ? 'i' : '-'}${varying.map((v) => (v ? '1' : '0')).join('')}`;
  let sql = insertSqlCache.get(key);
  if (sql) return sql;
  const arrays = DATA_COLUMNS.filter((_, i) => varying[i]);
  const scalars = DATA_COLUMNS.filter((_, i) => !varying[i]);
  let n = 0;
  const unnests = [...arrays.map(([, t]) => t), 'integer', 'text', 'text'].map(
    (t) => `unnest($${++n}::${t}[])`,
  );
  const data = `jsonb_array_elements($${++n}::jsonb)`;
  const values = scalars.map(([, t]) => `$${++n}::${t}`);
  const cols = [
    ...arrays.map(([c]) => c),
    'chain_seq',
    'prev_hash',
    'event_hash',
    'event_data',
    ...scalars.map(([c]) => c),
  ];
  // With an idempotency key, the response a retry gets back (its key row was claimed earlier
  // in the transaction): (written_by, key, response) after the heads.
  const idem = idempotency
    ? `, idem AS (
  UPDATE audit_idempotency_keys SET response = $${n + 6}::jsonb
  WHERE written_by = $${n + 4} AND idempotency_key = $${n + 5}
)`
    : '';
  sql = `WITH ins AS (
  INSERT INTO audit_events (${cols.join(', ')})
  SELECT ${['u.*', ...values].join(', ')}
  FROM ROWS FROM (${[...unnests, data].join(', ')}) AS u
)${idem}
UPDATE audit_chain_heads h SET seq = v.seq, last_hash = v.hash
FROM unnest($${n + 1}::text[], $${n + 2}::integer[], $${n + 3}::text[]) AS v(c, seq, hash)
WHERE h.correlation_id = v.c`;
  if (insertSqlCache.size >= 256) insertSqlCache.clear();
  insertSqlCache.set(key, sql);
  return sql;
}
const insertSqlCache = new Map<string, string>();

/** How many correlations' heads a repository remembers as existing. */
const KNOWN_HEADS_MAX = 100_000;

/** A batch made ready for its transaction (see `insert`). */
interface PreparedBatch {
  rows: ReadonlyArray<ReturnType<typeof toRow>>;
  templates: readonly LinkTemplate[];
  /** Its correlations, sorted: the order their heads are locked in. */
  corrs: readonly string[];
  /** Per DATA_COLUMNS entry, whether its value differs between the events. */
  varying: readonly boolean[];
  /** The varying columns' array literals. */
  arrays: readonly string[];
  /** The other columns' values, as text (or null). */
  scalars: ReadonlyArray<string | null>;
  /** Every event_data, as one JSON array. */
  eventData: string;
}

/** A batch's place in its correlations' queue (see `AuditRepository.queue`). */
interface Turn {
  leave?: () => void;
}

/** Thrown (and the transaction rolled back) when a head believed to exist is not there. */
class HeadMissing extends Error {}

/** Lets other requests' callbacks run (a transaction holding chain heads is waiting for one). */
const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));
/** Events prepared between two yields. */
const PREPARE_CHUNK = 100;

/** What a write returns per event, and what an idempotent replay returns again. */
export interface WriteReceipt {
  event_id: string;
  event_timestamp: string;
  correlation_id: string;
  chain_seq: number;
  event_hash: string;
  written_by: string;
}

const NEEDS_ESCAPE = /["\\]/;
const ESCAPE = /["\\]/g;

/**
 * A PostgreSQL array literal (`{"a","b",NULL}`) of strings, numbers and booleans, for an
 * `$n::type[]` parameter. Both drivers pass a string parameter through as its text, so the
 * per-element quoting is done here, once, up front (not by the driver while the transaction
 * holds chain heads). Every element is quoted; inside quotes only `"` and `\` take a backslash.
 */
export function arrayLiteral(values: ReadonlyArray<string | number | boolean | null>): string {
  const parts = new Array<string>(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined) parts[i] = 'NULL';
    else {
      const t = String(v);
      parts[i] = NEEDS_ESCAPE.test(t) ? `"${t.replace(ESCAPE, '\\$&')}"` : `"${t}"`;
    }
  }
  return `{${parts.join(',')}}`;
}

function monthStart(d: Date): Date {
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1));
}

/** Appends events to their chains; one instance per store (it queues the store's batches). */
export class ChainWriter {
  private readonly partitions = new Set<string>();
  /** Correlations whose chain head row exists (committed); heads are never deleted. */
  private readonly knownHeads = new Set<string>();
  /** Per correlation, the completion of the last batch of this store queued for it. */
  private readonly tails = new Map<string, Promise<void>>();
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
   * Creates the partitions of the month of `now` and of the `ahead` months after it (the
   * partition job: at start and periodically, never from a write, so no client can make the
   * store create partitions). Resolves once every one exists or could not be created (logged).
   */
  async ensurePartitionsAhead(now: Date, ahead: number): Promise<void> {
    for (let i = 0; i <= ahead; i++)
      await this.ensurePartition(
        new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + i, 1)),
      );
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
    if (events.length === 0) return { events: [], replayed: false };
    // Everything that does not depend on the chain heads is prepared before the transaction
    // locks them: each event's row and canonical form (all but its chain fields), and the
    // column arrays. In chunks, so that a concurrent write holding chain heads is not kept
    // waiting for the event loop while this one is being prepared.
    const rows: Array<ReturnType<typeof toRow>> = [];
    const templates: LinkTemplate[] = [];
    for (let i = 0; i < events.length; i++) {
      if (i > 0 && i % PREPARE_CHUNK === 0) await yieldToEventLoop();
      const row = toRow(events[i]!, writer, now);
      rows.push(row);
      templates.push(linkTemplate(row));
    }
    const corrs = [...new Set(rows.map((r) => r.correlation_id))].sort();
    const varying: boolean[] = [];
    const arrays: string[] = [];
    const scalars: Array<string | null> = [];
    for (const [c] of DATA_COLUMNS) {
      const first = rows[0]![c];
      if (rows.every((r) => r[c] === first)) {
        varying.push(false);
        scalars.push(first === null ? null : String(first));
      } else {
        if (arrays.length % 8 === 7) await yieldToEventLoop();
        varying.push(true);
        arrays.push(arrayLiteral(rows.map((r) => r[c])));
      }
    }
    const batch: PreparedBatch = {
      rows,
      templates,
      corrs,
      varying,
      arrays,
      scalars,
      eventData: JSON.stringify(rows.map((r) => r.event_data)),
    };
    const turn: Turn = {};
    const attempt = (headsExist: boolean) =>
      this.write(writer, idempotency, batch, headsExist, turn).finally(() => {
        // After COMMIT (or ROLLBACK): the next batch of these correlations may go.
        turn.leave?.();
        turn.leave = undefined;
      });
    const cached = corrs.every((c) => this.knownHeads.has(c));
    let out: { events: WriteReceipt[]; replayed: boolean };
    try {
      out = await attempt(cached);
    } catch (err) {
      // A head this store saw is gone (deleted by hand: the store never deletes one). Nothing
      // was written; once more, creating heads as needed.
      if (!(cached && (err as { cause?: unknown }).cause instanceof HeadMissing)) throw err;
      for (const c of corrs) this.knownHeads.delete(c);
      out = await attempt(false);
    }
    if (!out.replayed) this.rememberHeads(corrs);
    return out;
  }

  /**
   * Waits until every earlier batch of this store that shares a correlation with `corrs` has
   * finished; returns the function that lets later ones go. A batch only ever waits for
   * batches that queued before it, so the waits cannot form a cycle.
   */
  private async queue(corrs: readonly string[]): Promise<() => void> {
    let leave!: () => void;
    const done = new Promise<void>((resolve) => (leave = resolve));
    const before = new Set<Promise<void>>();
    for (const c of corrs) {
      const t = this.tails.get(c);
      if (t) before.add(t);
      this.tails.set(c, done);
    }
    if (before.size > 0) await Promise.all(before);
    return () => {
      for (const c of corrs) if (this.tails.get(c) === done) this.tails.delete(c);
      leave();
    };
  }

  private rememberHeads(corrs: readonly string[]): void {
    for (const c of corrs) this.knownHeads.add(c);
    // Oldest first (a Set iterates in insertion order): a bounded cache.
    for (const c of this.knownHeads) {
      if (this.knownHeads.size <= KNOWN_HEADS_MAX) break;
      this.knownHeads.delete(c);
    }
  }

  /** The writing transaction of `insert`; `headsExist`: every head of the batch exists. */
  private write(
    writer: Writer,
    idempotency: { key: string; requestHash: string } | undefined,
    { rows, templates, corrs, varying, arrays, scalars, eventData }: PreparedBatch,
    headsExist: boolean,
    turn: Turn,
  ): Promise<{ events: WriteReceipt[]; replayed: boolean }> {
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
      // Batches of this store that share a correlation take turns here, in the order they got
      // here, so that the next one locks the heads after the previous one committed rather
      // than while its COMMIT is on the way: the lock is then cheap (no row changed under it).
      // The row locks below stay the guarantee (several stores may share one database). A
      // batch waits here holding no lock another batch can wait for: its idempotency key is
      // its own (a second request with the same key waits at the claim above, before its turn),
      // and it has locked no head yet; and every batch it waits for has its connection.
      turn.leave = await this.queue(corrs);
      // Locks every head of the batch, one row after another in the order of `corrs` (sorted;
      // WITH ORDINALITY ... ORDER BY keeps that order), so that two batches lock their common
      // correlations in the same order and cannot deadlock. When every head is known to exist
      // (heads are never deleted), a row lock (SELECT ... FOR UPDATE) is enough; otherwise an
      // upsert creates the missing ones and locks all, in the same order.
      const r = headsExist
        ? await tx.query<{ correlation_id: string; seq: number; last_hash: string }>(
            `SELECT h.correlation_id, h.seq, h.last_hash
             FROM unnest($1::text[]) WITH ORDINALITY AS v(c, n)
             JOIN audit_chain_heads h ON h.correlation_id = v.c
             ORDER BY v.n FOR UPDATE OF h`,
            [arrayLiteral(corrs)],
          )
        : await tx.query<{ correlation_id: string; seq: number; last_hash: string }>(
            `INSERT INTO audit_chain_heads (correlation_id, seq, last_hash)
             SELECT c, 0, $1 FROM unnest($2::text[]) WITH ORDINALITY AS v(c, n) ORDER BY n
             ON CONFLICT (correlation_id) DO UPDATE SET seq = audit_chain_heads.seq
             RETURNING correlation_id, seq, last_hash`,
            [GENESIS_HASH, arrayLiteral(corrs)],
          );
      if (r.rows.length !== corrs.length) throw new HeadMissing();
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
      const receipts: WriteReceipt[] = rows.map((e, i) => ({
        event_id: e.event_id,
        event_timestamp: e.event_timestamp,
        correlation_id: e.correlation_id,
        chain_seq: chainSeq[i]!,
        event_hash: eventHash[i]!,
        written_by: e.written_by,
      }));
      // The last statement; COMMIT follows it at once (the heads stay locked until then).
      await tx.queryAndCommit(insertEventsSql(varying, idempotency !== undefined), [
        ...arrays,
        arrayLiteral(chainSeq),
        arrayLiteral(prevHash),
        arrayLiteral(eventHash),
        eventData,
        ...scalars,
        arrayLiteral(hc),
        arrayLiteral(hs),
        arrayLiteral(hh),
        ...(idempotency ? [writer.written_by, idempotency.key, JSON.stringify(receipts)] : []),
      ]);
      return { events: receipts, replayed: false };
    });
  }
}
