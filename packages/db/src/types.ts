/** A statement's result: the rows and how many rows it returned or changed. */
export interface QueryResult<T> {
  rows: T[];
  rowCount: number;
}

/** What runs SQL: the database itself or one transaction. */
export interface Queryable {
  /** One statement with `$1`-style parameters. */
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<QueryResult<T>>;
  /** Several statements without parameters (schema, migrations). */
  exec(sql: string): Promise<void>;
}

/** The statements of one transaction. */
export interface Transaction extends Queryable {
  /**
   * Runs the transaction's last statement and commits: on PostgreSQL the COMMIT is sent as
   * soon as the statement's result is in, without a round trip through the caller's code
   * (which may be busy). Resolves with the statement's result once COMMIT succeeded; throws
   * (and nothing is committed) when either fails. Nothing may follow it in the transaction.
   */
  queryAndCommit<T = Record<string, unknown>>(
    sql: string,
    params?: unknown[],
  ): Promise<QueryResult<T>>;
}

/**
 * One small interface over PostgreSQL (node-postgres) and embedded PGlite. Driver failures
 * are thrown as `DbError` (`ERR_DB_UNAVAILABLE` when a retry may succeed, else `ERR_DB`).
 */
export interface Db extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /**
   * Runs `fn` in one transaction: COMMIT when it resolves, ROLLBACK when it throws. What `fn`
   * throws is rethrown unchanged (its statements' failures are already `DbError`s).
   */
  transaction<T>(fn: (tx: Transaction) => Promise<T>): Promise<T>;
  /**
   * Resolves when the database answers a trivial statement, rejects with a `DbError` when it
   * does not: a readiness check, e.g. `probesPlugin`'s `ready: { db: () => db.ping() }`.
   */
  ping(): Promise<void>;
  /** Closes the pool or the embedded database. */
  close(): Promise<void>;
}
