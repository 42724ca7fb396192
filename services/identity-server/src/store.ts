import { createPgDb, createPgliteDb, type Db, type DbError } from '@precinct/db';

/**
 * The identity server's storage: the service kit's Db (`@precinct/db`) on embedded
 * PGlite in the data dir (initdb in a child process, 1 MB of shared buffers, 0700/0600; see
 * docs/identity-server.md for what each measure saves) or on PostgreSQL (`DATABASE_URL`).
 */
export async function openStore(opts: {
  /** PostgreSQL instead of PGlite. */
  databaseUrl?: string | undefined;
  /** PGlite's data directory. */
  dir: string;
  /** Hears about idle PostgreSQL connections the server dropped. */
  onIdleError?: (err: DbError) => void;
}): Promise<Db> {
  return opts.databaseUrl
    ? openPostgres(opts.databaseUrl, opts.onIdleError)
    : createPgliteDb(opts.dir);
}

/**
 * A small pool on `url`, checked at once: a bad URL or a down server fails start-up, not the
 * first request.
 */
export async function openPostgres(
  url: string,
  onIdleError: (err: DbError) => void = () => {},
): Promise<Db> {
  // The registry serves reads from memory; writes are admin calls, one at a time.
  const db = createPgDb(url, { max: 4, onIdleError });
  try {
    await db.ping();
  } catch (err) {
    await db.close().catch(() => undefined);
    throw err;
  }
  return db;
}

export const ENTRY_SCHEMA = `
CREATE TABLE IF NOT EXISTS identity_entries (
  id          text PRIMARY KEY,
  spiffe_id   text NOT NULL,
  -- sorted selectors: SPIRE's rule that one SPIFFE ID is registered once per selector set
  selector_key text NOT NULL,
  body        jsonb NOT NULL,
  revision    bigint NOT NULL,
  created_at  timestamptz NOT NULL,
  updated_at  timestamptz NOT NULL,
  UNIQUE (spiffe_id, selector_key)
)`;
