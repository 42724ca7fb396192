// `@precinct/db`: one SQL interface over PostgreSQL and embedded PGlite. A separate
// entry point so programs that need no database never load pg or PGlite.
export type { Db, Queryable, QueryResult, Transaction } from './types.js';
export { DbError, toDbError, type DbErrorCode } from './errors.js';
export { createPgDb, type PgDbOptions } from './pg.js';
export { createPgliteDb, type PgliteDbOptions } from './pglite.js';
