import { chmodSync, fchmodSync, lstatSync, mkdirSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import pg from 'pg';
import type { PGlite, PGliteOptions } from '@electric-sql/pglite';
import { AuditStoreError } from './errors.js';

export interface Queryable {
  query<T = Record<string, unknown>>(
    sql: string,
    params?: unknown[],
  ): Promise<{ rows: T[]; rowCount: number }>;
  /** Runs several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

/** The statements of one transaction. */
export interface Transaction extends Queryable {
  /**
   * Runs the transaction's last statement and commits: node-postgres sends COMMIT as soon as
   * the statement's result is in, without a round trip through the caller's code (which may be
   * busy). Resolves with the statement's result once COMMIT succeeded; throws (and nothing is
   * committed) when either fails. Nothing may follow it in the transaction.
   */
  queryAndCommit<T = Record<string, unknown>>(
    sql: string,
    params?: unknown[],
  ): Promise<{ rows: T[]; rowCount: number }>;
}

/** One small interface over node-postgres and PGlite. */
export interface Db extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** Runs `fn` in one transaction: COMMIT when it resolves, ROLLBACK when it throws. */
  transaction<T>(fn: (tx: Transaction) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

// SQLSTATE classes that mean "the database is not reachable right now": the client should retry.
const UNAVAILABLE_STATES = /^(08|53|57P0[1-3])/;
const UNAVAILABLE_NODE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EHOSTUNREACH',
]);

/** Maps driver errors to AuditStoreError: ERR_DB_UNAVAILABLE (503) or ERR_DB. */
export function wrapDbError(err: unknown): AuditStoreError {
  if (err instanceof AuditStoreError) return err;
  const e = err as { code?: string; message?: string };
  const msg = e?.message ?? String(err);
  if (
    (typeof e?.code === 'string' &&
      (UNAVAILABLE_STATES.test(e.code) || UNAVAILABLE_NODE_CODES.has(e.code))) ||
    /Connection terminated|connection timeout|Client has encountered a connection error|not queryable/i.test(
      msg,
    )
  ) {
    return new AuditStoreError('ERR_DB_UNAVAILABLE', `database unavailable: ${msg}`, {
      cause: err,
    });
  }
  return new AuditStoreError('ERR_DB', `database error: ${msg}`, { cause: err });
}

/** node-postgres pool against DATABASE_URL. */
export function createPgDb(url: string, opts: { max?: number } = {}): Db {
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.max ?? 10,
    connectionTimeoutMillis: 5_000,
    // A query on a connection that dies mid-flight (database restart) must fail, not hang:
    // the request then answers 503 and the client retries.
    query_timeout: 15_000,
  });
  // An idle client losing its connection (database restart) must not crash the process.
  pool.on('error', () => {});
  const q: Queryable['query'] = async (sql, params) => {
    try {
      const r = await pool.query(sql, params as unknown[]);
      return { rows: r.rows, rowCount: r.rowCount ?? 0 };
    } catch (err) {
      throw wrapDbError(err);
    }
  };
  return {
    kind: 'postgres',
    query: q,
    async exec(sql) {
      await q(sql);
    },
    async transaction(fn) {
      let client: pg.PoolClient;
      try {
        client = await pool.connect();
      } catch (err) {
        throw wrapDbError(err);
      }
      // A checked-out client has no pool listener: if the server drops the connection between
      // two statements of this transaction (database restart), the client emits 'error', which
      // unheard would crash the store. Here it only marks the connection broken; the pending or
      // next statement fails and the request answers 503.
      let broken = false;
      const onError = () => {
        broken = true;
      };
      client.on('error', onError);
      let committed = false;
      try {
        await client.query('BEGIN');
        const tx: Transaction = {
          async query(sql, params) {
            const r = await client.query(sql, params as unknown[]);
            return { rows: r.rows, rowCount: r.rowCount ?? 0 };
          },
          async exec(sql) {
            await client.query(sql);
          },
          async queryAndCommit(sql, params) {
            // Both queued at once: the client sends COMMIT when the statement completes. After
            // a failed statement PostgreSQL answers that COMMIT with a rollback.
            const statement = client.query(sql, params as unknown[]);
            const commit = client.query('COMMIT');
            let r: pg.QueryResult;
            try {
              r = await statement;
            } catch (err) {
              await commit.catch(() => {});
              throw err;
            }
            await commit;
            committed = true;
            return { rows: r.rows, rowCount: r.rowCount ?? 0 };
          },
        };
        const out = await fn(tx);
        if (!committed) await client.query('COMMIT');
        return out;
      } catch (err) {
        try {
          await client.query('ROLLBACK');
        } catch {
          broken = true;
        }
        throw wrapDbError(err);
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

/**
 * Makes `dir` and everything under it private to the owner (directories 0700, files 0600):
 * audit records are not for other local users. Also tightens a data directory written by an
 * earlier release, whose files PGlite created 0666/0755 (less the umask).
 */
function makePrivate(dir: string): void {
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop()!;
    chmodSync(d, 0o700);
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = lstatSync(p);
      if (st.isDirectory()) stack.push(p);
      else if (st.isFile() && (st.mode & 0o777) !== 0o600) chmodSync(p, 0o600);
    }
  }
}

/** Emscripten's `S_IFMT` bits, the directory type among them, and its `O_CREAT` flag. */
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const O_CREAT = 0o100;

/** The parts of Emscripten's NODEFS the data directory's modes are enforced in. */
interface EmscriptenNodeFs {
  node_ops: { mknod: (parent: unknown, name: string, mode: number, dev: number) => unknown };
  stream_ops: { open: (stream: { flags: number; nfd?: unknown }) => void };
}

/** Embedded PGlite: in memory, or persisted in `dataDir` (directories 0700, files 0600). */
export async function createPgliteDb(dataDir?: string): Promise<Db> {
  // Loaded on first use: a store on PostgreSQL never needs the embedded database's code.
  const { PGlite } = await import('@electric-sql/pglite');
  let fs: PGliteOptions['fs'];
  if (dataDir) {
    const root = resolve(dataDir);
    mkdirSync(root, { recursive: true, mode: 0o700 });
    makePrivate(root);
    const { NodeFS } = await import('@electric-sql/pglite/nodefs');
    // PGlite's Node file system creates what PostgreSQL asks for with the modes Emscripten
    // passes (0666 files, 0777 directories, less the umask). PostgreSQL itself would use
    // 0600/0700: every node this mount creates gets those, whatever mode was asked for.
    class PrivateNodeFS extends NodeFS {
      override async init(...args: Parameters<InstanceType<typeof NodeFS>['init']>) {
        const { emscriptenOpts } = await super.init(...args);
        const preRun = [
          ...((emscriptenOpts.preRun as Array<(mod: unknown) => void> | undefined) ?? []),
          (mod: unknown) => {
            const nodefs = (mod as { NODEFS: EmscriptenNodeFs }).NODEFS;
            const { mknod } = nodefs.node_ops;
            nodefs.node_ops.mknod = (parent, name, mode, dev) =>
              mknod(
                parent,
                name,
                (mode & S_IFMT) | ((mode & S_IFMT) === S_IFDIR ? 0o700 : 0o600),
                dev,
              );
            // An open with O_CREAT of a file Emscripten believes exists reaches Node's
            // openSync without a mode (0666 less the umask): such a file is made 0600 at once.
            const { open } = nodefs.stream_ops;
            nodefs.stream_ops.open = (stream) => {
              open(stream);
              if (stream.flags & O_CREAT && typeof stream.nfd === 'number')
                fchmodSync(stream.nfd, 0o600);
            };
          },
        ];
        return { emscriptenOpts: { ...emscriptenOpts, preRun } };
      }
    }
    fs = new PrivateNodeFS(root);
  }
  const db = fs ? await PGlite.create({ fs }) : await PGlite.create();
  // initdb runs in a module of its own, with PGlite's modes: what it wrote is tightened here.
  if (dataDir) makePrivate(resolve(dataDir));
  const wrap = (x: { query: PGlite['query']; exec: PGlite['exec'] }): Queryable => ({
    async exec(sql: string) {
      try {
        await x.exec(sql);
      } catch (err) {
        throw wrapDbError(err);
      }
    },
    async query<T>(sql: string, params?: unknown[]) {
      try {
        const r = await x.query<T>(sql, params as unknown[]);
        return { rows: r.rows, rowCount: r.affectedRows ?? r.rows.length };
      } catch (err) {
        throw wrapDbError(err);
      }
    },
  });
  const self = wrap(db);
  return {
    kind: 'pglite',
    query: self.query,
    exec: self.exec,
    async transaction(fn) {
      try {
        return await db.transaction((tx) => {
          const q = wrap(tx);
          // In process there is no round trip to save: the transaction commits when fn resolves.
          return fn({ ...q, queryAndCommit: q.query });
        });
      } catch (err) {
        throw wrapDbError(err);
      }
    },
    async close() {
      await db.close();
    },
  };
}
