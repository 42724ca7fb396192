import pg from 'pg';
import { toDbError, type DbError } from './errors.js';
import type { Db, Queryable, QueryResult, Transaction } from './types.js';

/** Options of {@link createPgDb}. */
export interface PgDbOptions {
  /** Pool size. Default 10. */
  max?: number;
  /** How long to wait for a connection before the statement fails (503). Default 5 s. */
  connectionTimeoutMs?: number;
  /**
   * How long one statement may take. A statement on a connection that dies mid-flight
   * (database restart) then fails instead of hanging. Default 15 s.
   */
  queryTimeoutMs?: number;
  /**
   * Hears about idle connections the server dropped (restart, failover); the pool opens a
   * new one on the next statement. Default: ignored. Never a reason to crash.
   */
  onIdleError?: (err: DbError) => void;
}

/**
 * A node-postgres pool on `url` (a `postgres://` URL, e.g. DATABASE_URL). Connects lazily: call
 * `ping()` to surface a bad URL or a down server at start-up rather than at the first request.
 */
export function createPgDb(url: string, opts: PgDbOptions = {}): Db {
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.max ?? 10,
    connectionTimeoutMillis: opts.connectionTimeoutMs ?? 5_000,
    query_timeout: opts.queryTimeoutMs ?? 15_000,
  });
  // An idle client losing its connection must not crash the process: unheard, 'error' would.
  const onIdleError = opts.onIdleError;
  pool.on('error', (err) => onIdleError?.(toDbError(err)));
  const query: Queryable['query'] = async <T>(sql: string, params?: unknown[]) => {
    try {
      const r = await pool.query(sql, params);
      return { rows: r.rows as T[], rowCount: r.rowCount ?? 0 };
    } catch (err) {
      throw toDbError(err);
    }
  };
  return {
    kind: 'postgres',
    query,
    async exec(sql) {
      await query(sql);
    },
    async ping() {
      await query('SELECT 1');
    },
    async transaction(fn) {
      let client: pg.PoolClient;
      try {
        client = await pool.connect();
      } catch (err) {
        throw toDbError(err);
      }
      // A checked-out client has no pool listener: if the server drops the connection between
      // two statements of this transaction, the client emits 'error', which unheard would
      // crash the process. Here it only marks the connection broken; the pending or next
      // statement fails, and the connection is discarded rather than returned to the pool.
      let broken = false;
      const onError = () => {
        broken = true;
      };
      client.on('error', onError);
      const run = async <T>(sql: string, params?: unknown[]): Promise<QueryResult<T>> => {
        try {
          const r = await client.query(sql, params);
          return { rows: r.rows as T[], rowCount: r.rowCount ?? 0 };
        } catch (err) {
          throw toDbError(err);
        }
      };
      let committed = false;
      try {
        await run('BEGIN');
        const tx: Transaction = {
          query: run,
          async exec(sql) {
            await run(sql);
          },
          async queryAndCommit<T>(sql: string, params?: unknown[]) {
            // Both queued at once: the client sends COMMIT when the statement completes. After
            // a failed statement PostgreSQL answers that COMMIT with a rollback.
            const statement = client.query(sql, params);
            const commit = client.query('COMMIT');
            let r: pg.QueryResult;
            try {
              r = await statement;
            } catch (err) {
              await commit.catch(() => {});
              throw toDbError(err);
            }
            try {
              await commit;
            } catch (err) {
              throw toDbError(err);
            }
            committed = true;
            return { rows: r.rows as T[], rowCount: r.rowCount ?? 0 };
          },
        };
        const out = await fn(tx);
        if (!committed) await run('COMMIT');
        return out;
      } catch (err) {
        if (!committed) {
          try {
            await client.query('ROLLBACK');
          } catch {
            broken = true;
          }
        }
        throw err;
      } finally {
        client.off('error', onError);
        client.release(broken ? true : undefined);
      }
    },
    async close() {
      await pool.end();
    },
  };
}
