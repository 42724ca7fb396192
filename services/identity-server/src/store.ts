import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { access, chmod, lstat, mkdir, mkdtemp, readdir, rename, rm, rmdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * The little SQL the identity server needs, on PGlite (embedded, the default) or PostgreSQL
 * (`DATABASE_URL`). Kept deliberately small: the audit store owns Precinct's shared storage
 * layer and this will move onto it.
 */
export interface SqlClient {
  query<R = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<{ rows: R[] }>;
  close(): Promise<void>;
}

/**
 * PGlite persisted in `dir`. A directory without a database (no PG_VERSION) is initialized
 * first, by {@link initPgliteDir} in a child process.
 *
 * Memory, measured on Node 20 with the identity-rss benchmark's 10,000 entries (see
 * docs/identity-server.md):
 * - initdb in a child: PGlite's own initdb starts a second Postgres (its own 128 MB of
 *   WebAssembly memory) beside initdb.wasm and runs the whole bootstrap through them. Once done
 *   the memory is free but stays resident (glibc keeps the compile threads' arenas; PGlite
 *   caches both compiled modules for the life of the process): about 90 MB of RSS kept and a
 *   peak near 800 MB. In a child process it all goes when the child exits.
 * - Not done: compiling PGlite with Liftoff only (`--liftoff-only`) would save about 50 MB
 *   more (TurboFan's compile zones stay resident in glibc arenas), but it is a process-wide V8
 *   flag that a library must not set at run time; a deployment can pass it to node itself.
 * - 1 MB of shared buffers: WebAssembly memory never shrinks, so every buffer once used
 *   stays resident. PGlite's default 128 MB touches some 150 MB at start; 8 MB cost 8 MB more
 *   than 1 MB.
 */
export async function openPglite(dir: string): Promise<SqlClient> {
  await mkdir(dirname(dir), { recursive: true, mode: 0o700 });
  if (!(await exists(join(dir, 'PG_VERSION')))) {
    const stray = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [];
      throw err;
    });
    // Not ours to delete, and Postgres cannot use it.
    if (stray.length > 0) throw new Error(`${dir} is not empty and holds no PGlite database`);
    await initPgliteDir(dir);
  }
  const { PGlite } = await import('@electric-sql/pglite');
  const db = await PGlite.create({
    dataDir: dir,
    // The entry table is small, reads are served from memory (EntryRegistry), and the OS
    // caches the files: more buffers bought no speed for 10,000 entries.
    postgresqlconf: 'shared_buffers = 1MB',
  });
  // Emscripten's file system creates some files with the process umask (0644, and 0666/0755
  // from data dirs made before initdb ran under umask 077), and start-up rewrites
  // pg_internal.init: tighten after opening and again after closing.
  await restrictTree(dir);
  return {
    query: async <R>(sql: string, params?: unknown[]) => {
      const r = await db.query<R>(sql, params);
      return { rows: r.rows };
    },
    close: async () => {
      await db.close();
      await restrictTree(dir);
    },
  };
}

/** Makes every directory under `dir` (and itself) 0700 and every file 0600; symlinks untouched. */
export async function restrictTree(dir: string): Promise<void> {
  const st = await lstat(dir);
  if (st.isSymbolicLink()) return;
  if (st.isDirectory()) {
    if ((st.mode & 0o777) !== 0o700) await chmod(dir, 0o700);
    for (const name of await readdir(dir)) await restrictTree(join(dir, name));
  } else if ((st.mode & 0o777) !== 0o600) {
    await chmod(dir, 0o600);
  }
}

const exists = (p: string) =>
  access(p).then(
    () => true,
    () => false,
  );

/**
 * Creates a PGlite database in `dir` (absent or empty), in a child `node`: plain JavaScript,
 * no loader, PGlite imported by the URL this module resolves it to. The child works in a
 * sibling directory that is renamed into place once initdb succeeded, so an interrupted start
 * leaves no half-made database behind. It compiles with Liftoff only (V8's baseline wasm
 * compiler): initdb takes 3 s instead of 5 on the 2-core development VM, as TurboFan's
 * compile work is not repaid in a run this short.
 */
export async function initPgliteDir(dir: string): Promise<void> {
  const pglite = import.meta.resolve('@electric-sql/pglite');
  const tmp = await mkdtemp(join(dirname(dir), `.${basename(dir)}.initdb-`));
  try {
    const kid = spawn(
      process.execPath,
      [
        '--liftoff-only',
        '--input-type=module',
        '-e',
        // umask 077: the database files are the server's alone (0600 files, 0700 directories).
        `process.umask(0o077);
         const { PGlite } = await import(${JSON.stringify(pglite)});
         const db = await PGlite.create({ dataDir: process.argv[1] });
         await db.close();`,
        tmp,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    kid.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const [code, signal] = (await once(kid, 'exit')) as [number | null, string | null];
    if (code !== 0) {
      throw new Error(
        `initializing the PGlite database in ${dir} failed (${signal ?? `exit ${code}`}): ` +
          stderr.trim().slice(-2000),
      );
    }
    await rmdir(dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
    await rename(tmp, dir);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
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
