import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, fchmodSync, lstatSync, readdirSync } from 'node:fs';
import { access, mkdir, mkdtemp, readdir, rename, rm, rmdir } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { PGlite, PGliteOptions } from '@electric-sql/pglite';
import { toDbError } from './errors.js';
import type { Db, Queryable } from './types.js';

/** Options of {@link createPgliteDb}. */
export interface PgliteDbOptions {
  /**
   * PostgreSQL's `shared_buffers`. Default `1MB`: WebAssembly memory never shrinks, so every
   * buffer once used stays resident for the life of the process; the OS caches the files.
   */
  sharedBuffers?: string;
}

/**
 * Embedded PGlite: in memory, or persisted in `dataDir` (directories 0700, files 0600).
 *
 * Memory (measured by `npm run bench -- identity-rss`, see docs/identity-server.md):
 * - A new `dataDir` is initialized by {@link initPgliteDir} in a child process. PGlite's own
 *   initdb starts a second Postgres (its own WebAssembly memory) beside initdb.wasm; once done
 *   the memory is free but stays resident (glibc keeps the compile threads' arenas, PGlite
 *   caches both compiled modules): about 90 MB of RSS kept and a peak near 800 MB. In a child
 *   it all goes when the child exits. An in-memory database has nowhere to hand over from a
 *   child, so it still runs initdb in this process.
 * - 1 MB of shared buffers (see {@link PgliteDbOptions.sharedBuffers}): PGlite's default
 *   128 MB touches some 150 MB at start.
 * - Not done: compiling with Liftoff only (`--liftoff-only`) would save about 50 MB more, but it
 *   is a process-wide V8 flag a library must not set; a deployment can pass it to node.
 *
 * A `dataDir` that holds other files and no database is refused, never initialized over.
 */
export async function createPgliteDb(dataDir?: string, opts: PgliteDbOptions = {}): Promise<Db> {
  // Loaded on first use: a program on PostgreSQL never needs the embedded database's code.
  const { PGlite } = await import('@electric-sql/pglite');
  const postgresqlconf = `shared_buffers = ${opts.sharedBuffers ?? '1MB'}`;
  let db: PGlite;
  let root: string | undefined;
  if (dataDir) {
    const dir = resolve(dataDir);
    root = dir;
    await mkdir(dirname(dir), { recursive: true, mode: 0o700 });
    if (!(await exists(join(dir, 'PG_VERSION')))) {
      const stray = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return [];
        throw err;
      });
      // Not ours to delete, and PostgreSQL cannot use it.
      if (stray.length > 0) throw new Error(`${dir} is not empty and holds no PGlite database`);
      await initPgliteDir(dir);
    }
    // Also tightens a data directory an earlier release left 0666/0755.
    makePrivate(dir);
    db = await PGlite.create({ fs: await privateNodeFs(dir), postgresqlconf });
    // Start-up rewrites some files (pg_internal.init) through paths the mount does not see.
    makePrivate(dir);
  } else {
    db = await PGlite.create({ postgresqlconf });
  }

  const wrap = (x: { query: PGlite['query']; exec: PGlite['exec'] }): Queryable => ({
    async exec(sql: string) {
      try {
        await x.exec(sql);
      } catch (err) {
        throw toDbError(err);
      }
    },
    async query<T>(sql: string, params?: unknown[]) {
      try {
        const r = await x.query<T>(sql, params);
        return { rows: r.rows, rowCount: r.affectedRows ?? r.rows.length };
      } catch (err) {
        throw toDbError(err);
      }
    },
  });
  const self = wrap(db);
  return {
    kind: 'pglite',
    query: self.query,
    exec: self.exec,
    async ping() {
      await self.query('SELECT 1');
    },
    async transaction(fn) {
      // What fn threw passes unchanged; BEGIN/COMMIT/ROLLBACK failures become DbErrors.
      let thrown: { err: unknown } | undefined;
      try {
        return await db.transaction(async (tx) => {
          const q = wrap(tx);
          try {
            // In process there is no round trip to save: it commits when fn resolves.
            return await fn({ ...q, queryAndCommit: q.query });
          } catch (err) {
            thrown = { err };
            throw err;
          }
        });
      } catch (err) {
        throw thrown && thrown.err === err ? err : toDbError(err);
      }
    },
    async close() {
      await db.close();
      if (root) makePrivate(root);
    },
  };
}

const exists = (p: string) =>
  access(p).then(
    () => true,
    () => false,
  );

/**
 * Makes `dir` and everything under it private to the owner (directories 0700, files 0600);
 * symlinks untouched. A database's rows are not for other local users.
 */
function makePrivate(dir: string): void {
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop()!;
    if ((lstatSync(d).mode & 0o777) !== 0o700) chmodSync(d, 0o700);
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

/**
 * PGlite's Node file system on `root`, creating what PostgreSQL asks for 0600/0700 as
 * PostgreSQL itself would: Emscripten passes 0666 files and 0777 directories (less the umask).
 */
async function privateNodeFs(root: string): Promise<NonNullable<PGliteOptions['fs']>> {
  const { NodeFS } = await import('@electric-sql/pglite/nodefs');
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
          // An open with O_CREAT of a file Emscripten believes exists reaches Node's openSync
          // without a mode (0666 less the umask): such a file is made 0600 at once.
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
  return new PrivateNodeFS(root);
}

/**
 * Creates a PGlite database in `dir` (absent or empty), in a child `node`: plain JavaScript,
 * no loader, PGlite imported by the URL this module resolves it to. The child works in a
 * sibling directory that is renamed into place once initdb succeeded, so an interrupted start
 * leaves no half-made database behind. It compiles with Liftoff only (V8's baseline wasm
 * compiler): initdb takes 3 s instead of 5 on a 2-core VM, as TurboFan's compile work is not
 * repaid in a run this short.
 */
async function initPgliteDir(dir: string): Promise<void> {
  const pglite = import.meta.resolve('@electric-sql/pglite');
  const tmp = await mkdtemp(join(dirname(dir), `.${basename(dir)}.initdb-`));
  try {
    const kid = spawn(
      process.execPath,
      [
        '--liftoff-only',
        '--input-type=module',
        '-e',
        // umask 077: the database files are the owner's alone (0600 files, 0700 directories).
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
