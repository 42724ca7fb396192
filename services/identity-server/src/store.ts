import { mkdir } from 'node:fs/promises';

/**
 * The little SQL the identity server needs, on PGlite (embedded, the default) or PostgreSQL
 * (`DATABASE_URL`). Kept deliberately small: the audit store owns Precinct's shared storage
 * layer and this will move onto it.
 */
export interface SqlClient {
  query<R = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<{ rows: R[] }>;
  close(): Promise<void>;
}

/** PGlite in `dir` (persistent) or in memory when `dir` is undefined. */
export async function openPglite(dir?: string): Promise<SqlClient> {
  const { PGlite } = await import('@electric-sql/pglite');
  if (dir) await mkdir(dir, { recursive: true, mode: 0o700 });
  // The entry table is small: PGlite's default 128 MB of shared buffers would be most of our
  // memory.
  const db = await PGlite.create({
    ...(dir ? { dataDir: dir } : {}),
    postgresqlconf: 'shared_buffers = 8MB',
  });
  return {
    query: async <R>(sql: string, params?: unknown[]) => {
      const r = await db.query<R>(sql, params);
      return { rows: r.rows };
    },
    close: () => db.close(),
  };
}

/** A pg pool on `url`; `onIdleError` hears about idle connections the server dropped. */
export async function openPostgres(
  url: string,
  onIdleError: (err: Error) => void = () => {},
): Promise<SqlClient> {
  const { default: pg } = await import('pg');
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  // An idle connection the server drops (restart, failover) is reported here; unhandled, it
  // would crash the process. The pool opens a new connection on the next query.
  pool.on('error', onIdleError);
  // Surface a bad URL or a down server at start-up, not at the first request.
  try {
    await pool.query('SELECT 1');
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw err;
  }
  return {
    query: async <R>(sql: string, params?: unknown[]) => {
      const r = await pool.query(sql, params);
      return { rows: r.rows as R[] };
    },
    close: () => pool.end(),
  };
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
