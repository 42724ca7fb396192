import {
  createPgDb as createRuntimePgDb,
  createPgliteDb as createRuntimePgliteDb,
  DbError,
  toDbError,
  type Db,
  type PgDbOptions,
} from '@precinct/db';
import { AuditStoreError } from './errors.js';

// The store's SQL runs on the service kit's Db (`@precinct/db`); this module only keeps
// the store's error contract: whatever leaves the Db is an AuditStoreError (ERR_DB_UNAVAILABLE
// answers 503, ERR_DB 500), and an error thrown inside a transaction keeps its cause.
export type { Db, Queryable, Transaction } from '@precinct/db';

/** Maps driver and Db errors to AuditStoreError: ERR_DB_UNAVAILABLE (503) or ERR_DB. */
export function wrapDbError(err: unknown): AuditStoreError {
  if (err instanceof AuditStoreError) return err;
  const d = err instanceof DbError ? err : toDbError(err);
  return new AuditStoreError(d.code, d.message, { cause: d.cause });
}

const fail = (err: unknown): never => {
  throw wrapDbError(err);
};

function withStoreErrors(db: Db): Db {
  return {
    kind: db.kind,
    query: <T>(sql: string, params?: unknown[]) => db.query<T>(sql, params).catch(fail),
    exec: (sql) => db.exec(sql).catch(fail),
    transaction: (fn) => db.transaction(fn).catch(fail),
    ping: () => db.ping().catch(fail),
    close: () => db.close(),
  };
}

/** node-postgres pool against DATABASE_URL. */
export function createPgDb(url: string, opts: Pick<PgDbOptions, 'max'> = {}): Db {
  return withStoreErrors(createRuntimePgDb(url, opts));
}

/** Embedded PGlite: in memory, or persisted in `dataDir` (directories 0700, files 0600). */
export async function createPgliteDb(dataDir?: string): Promise<Db> {
  return withStoreErrors(await createRuntimePgliteDb(dataDir));
}
