import type { Db } from './db.js';

interface Migration {
  version: number;
  name: string;
  sql: string;
}

/**
 * Append-only list: never edit a released migration, add a new one. The guard trigger is why
 * this store is tamper-evident rather than only tamper-detecting: UPDATE is always refused and
 * DELETE only inside a transaction that set `precinct.audit_retention = 'on'` (the retention
 * job), only for events past their retention, and never under legal hold.
 */
export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'audit events, chain heads, legal holds, guard trigger',
    sql: `
CREATE TABLE audit_events (
  event_id uuid NOT NULL,
  version text NOT NULL,
  event_type text NOT NULL,
  event_timestamp timestamptz NOT NULL,
  event_category text NOT NULL,
  event_action text NOT NULL,
  event_outcome text NOT NULL,
  actor_type text,
  actor_id text,
  actor_ip text,
  resource_type text,
  resource_id text,
  correlation_id text NOT NULL,
  parent_event_id uuid,
  namespace text,
  cluster_id text,
  severity text,
  duration_ms integer,
  error_code text,
  error_message text,
  retention_days integer NOT NULL,
  is_sensitive boolean NOT NULL,
  event_data jsonb NOT NULL,
  written_by text NOT NULL,
  written_by_kind text NOT NULL,
  on_behalf_of text,
  chain_seq integer NOT NULL,
  prev_hash text NOT NULL,
  event_hash text NOT NULL,
  PRIMARY KEY (event_timestamp, event_id)
) PARTITION BY RANGE (event_timestamp);
CREATE TABLE audit_events_default PARTITION OF audit_events DEFAULT;
CREATE INDEX audit_events_correlation ON audit_events (correlation_id, chain_seq);
CREATE INDEX audit_events_written_by ON audit_events (written_by, event_timestamp);
CREATE TABLE audit_chain_heads (
  correlation_id text PRIMARY KEY,
  seq integer NOT NULL,
  last_hash text NOT NULL,
  pruned_seq integer NOT NULL DEFAULT 0,
  pruned_hash text
);
CREATE TABLE audit_legal_holds (
  correlation_id text PRIMARY KEY,
  reason text NOT NULL,
  placed_by text NOT NULL,
  placed_at timestamptz NOT NULL DEFAULT now()
);
CREATE FUNCTION audit_events_guard() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF TG_OP = 'UPDATE' THEN
    RAISE EXCEPTION 'audit_events is append-only: UPDATE refused' USING ERRCODE = '42501';
  END IF;
  IF current_setting('precinct.audit_retention', true) IS DISTINCT FROM 'on' THEN
    RAISE EXCEPTION 'audit_events: DELETE only through the retention job' USING ERRCODE = '42501';
  END IF;
  IF OLD.event_timestamp + make_interval(days => OLD.retention_days) > now() THEN
    RAISE EXCEPTION 'audit_events: event % is within its retention', OLD.event_id USING ERRCODE = '42501';
  END IF;
  IF EXISTS (SELECT 1 FROM audit_legal_holds h WHERE h.correlation_id = OLD.correlation_id) THEN
    RAISE EXCEPTION 'audit_events: correlation % is under legal hold', OLD.correlation_id USING ERRCODE = '42501';
  END IF;
  RETURN OLD;
END
$fn$;
CREATE TRIGGER audit_events_guard BEFORE UPDATE OR DELETE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION audit_events_guard();
CREATE FUNCTION audit_events_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  RAISE EXCEPTION 'audit_events: TRUNCATE refused' USING ERRCODE = '42501';
END
$fn$;
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION audit_events_no_truncate();
`,
  },
  {
    version: 2,
    name: 'idempotency keys',
    // Scoped by writer: one writer can neither replay nor block another writer's key.
    sql: `
CREATE TABLE audit_idempotency_keys (
  written_by text NOT NULL,
  idempotency_key text NOT NULL,
  request_hash text NOT NULL,
  response jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (written_by, idempotency_key)
);
CREATE INDEX audit_idempotency_keys_created ON audit_idempotency_keys (created_at);
`,
  },
  {
    version: 3,
    name: 'index for newest-first queries by correlation',
    // GET /api/v1/audit/events?correlation_id=... reads newest first, (event_timestamp,
    // event_id) descending: with this index (scanned backward) a page costs its own rows,
    // not a sort of every event of the correlation (at 1,000 events per correlation and a
    // million stored, about 1,000 heap pages per query otherwise). Built in the migration's
    // transaction: writes wait while it is built (PostgreSQL cannot build an index on a
    // partitioned table CONCURRENTLY), a few seconds per million events.
    sql: `
CREATE INDEX audit_events_correlation_time ON audit_events (correlation_id, event_timestamp, event_id);
`,
  },
  {
    version: 4,
    name: 'lz4 for stored idempotent responses',
    // A 1000-event batch's response is about 270 kB of JSON, written while the batch holds its
    // chain heads: lz4 compresses it about as well as the default pglz, in less than half the
    // time. Only where the server has lz4 (PGlite has not): else pglz stays. Values already
    // stored keep their compression.
    sql: `
DO $$
BEGIN
  ALTER TABLE audit_idempotency_keys ALTER COLUMN response SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
  NULL;
END
$$;
`,
  },
  {
    version: 5,
    name: 'delegated decisions by person, agent and txn',
    // Filled by PostgreSQL from columns every event already has, so a writer sends nothing new,
    // no event's canonical form or link hash changes (they are not in COLUMNS), and no one can
    // write a value that disagrees with the hashed event_data (a generated column cannot be
    // set; UPDATE is refused anyway). Adding them rewrites the table once, events already
    // stored included, under an exclusive lock: a few seconds per million events.
    //   person: the verified delegation's person (on_behalf_of), else event_data.on_behalf_of;
    //   agent:  with a verified delegation the writer itself (the delegation's actor is the
    //           verified caller), else event_data.actors[0] (the outermost actor of an RFC 8693
    //           chain), else event_data.agent;
    //   txn:    event_data.txn.
    // A value from event_data counts only as a JSON string of 1..255 characters (and `actors`
    // only as an array: `->` 0 of a jsonb scalar is the scalar itself). Partial
    // indexes: events without the field (most of them) cost nothing.
    sql: `
ALTER TABLE audit_events
  ADD COLUMN person text GENERATED ALWAYS AS (
    CASE
      WHEN on_behalf_of IS NOT NULL THEN on_behalf_of
      WHEN jsonb_typeof(event_data -> 'on_behalf_of') = 'string'
        AND length(event_data ->> 'on_behalf_of') BETWEEN 1 AND 255
        THEN event_data ->> 'on_behalf_of'
    END) STORED,
  ADD COLUMN agent text GENERATED ALWAYS AS (
    CASE
      WHEN on_behalf_of IS NOT NULL THEN written_by
      WHEN jsonb_typeof(event_data -> 'actors') = 'array'
        AND jsonb_typeof(event_data -> 'actors' -> 0) = 'string'
        AND length(event_data -> 'actors' ->> 0) BETWEEN 1 AND 255
        THEN event_data -> 'actors' ->> 0
      WHEN jsonb_typeof(event_data -> 'agent') = 'string'
        AND length(event_data ->> 'agent') BETWEEN 1 AND 255
        THEN event_data ->> 'agent'
    END) STORED,
  ADD COLUMN txn text GENERATED ALWAYS AS (
    CASE
      WHEN jsonb_typeof(event_data -> 'txn') = 'string'
        AND length(event_data ->> 'txn') BETWEEN 1 AND 255
        THEN event_data ->> 'txn'
    END) STORED;
CREATE INDEX audit_events_person ON audit_events (person, event_timestamp, event_id)
  WHERE person IS NOT NULL;
CREATE INDEX audit_events_agent ON audit_events (agent, event_timestamp, event_id)
  WHERE agent IS NOT NULL;
CREATE INDEX audit_events_txn ON audit_events (txn, event_timestamp, event_id)
  WHERE txn IS NOT NULL;
`,
  },
];

/** Applies pending migrations in order, each in its own transaction, under an advisory lock. */
export async function migrate(db: Db): Promise<number[]> {
  const applied: number[] = [];
  await db.exec(`CREATE TABLE IF NOT EXISTS audit_schema_migrations (
    version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
  for (const m of MIGRATIONS) {
    const did = await db.transaction(async (tx) => {
      // Two stores starting against one database must not both apply a migration.
      await tx.query('SELECT pg_advisory_xact_lock(7243001)');
      const r = await tx.query('SELECT 1 FROM audit_schema_migrations WHERE version = $1', [
        m.version,
      ]);
      if (r.rows.length > 0) return false;
      await tx.exec(m.sql);
      await tx.query('INSERT INTO audit_schema_migrations (version, name) VALUES ($1, $2)', [
        m.version,
        m.name,
      ]);
      return true;
    });
    if (did) applied.push(m.version);
  }
  return applied;
}
