import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { requirePeer } from './peers.js';
import { tempDir } from './tmp.js';
import { stopProcess } from './process.js';

/** A real PostgreSQL server started by a test. */
export interface PostgresServer {
  /** `postgres://postgres@127.0.0.1:<port>/postgres` (trust auth on loopback). */
  url: string;
  port: number;
  /** The temp directory holding the cluster and its log. */
  dir: string;
  /** Stops the server (fast shutdown) and starts it again on the same port and data. */
  restart(): Promise<void>;
  /** Stops the server (idempotent), keeping the data. */
  stop(): Promise<void>;
  /** Starts a stopped server again on the same port. */
  start(): Promise<void>;
  /** Stops the server and removes its directory (idempotent). */
  close(): Promise<void>;
  log(): string;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen({ host: '127.0.0.1', port: 0 }, () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** uid/gid to run initdb/postgres as: they refuse to run as root. */
function unprivilegedUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  for (const name of ['postgres', 'nobody']) {
    try {
      const uid = Number(execFileSync('id', ['-u', name]).toString().trim());
      const gid = Number(execFileSync('id', ['-g', name]).toString().trim());
      if (Number.isInteger(uid) && uid > 0) return { uid, gid };
    } catch {
      /* no such user */
    }
  }
  throw new Error('running as root and no unprivileged user (postgres, nobody) to run PostgreSQL');
}

/**
 * Starts Debian's PostgreSQL (initdb into a fresh temp dir, trust auth, fsync off for speed,
 * unix socket inside the temp dir) on 127.0.0.1 and a free port. As root, the cluster is owned
 * by and run as the `postgres` user. Restarts reuse the port so reconnecting clients find it.
 */
export async function startPostgres(
  opts: { startTimeoutMs?: number; settings?: Record<string, string> } = {},
): Promise<PostgresServer> {
  const postgresBin = requirePeer('postgres');
  const binDir = dirname(postgresBin);
  const initdb = existsSync(join(binDir, 'initdb')) ? join(binDir, 'initdb') : 'initdb';
  const tmp = tempDir('precinct-pg-');
  const user = unprivilegedUser();
  const dataDir = join(tmp.path, 'data');
  const sockDir = join(tmp.path, 'sock');
  mkdirSync(sockDir);
  if (user) {
    chmodSync(tmp.path, 0o755);
    chownSync(tmp.path, user.uid, user.gid);
    chownSync(sockDir, user.uid, user.gid);
  }
  const asUser = user ? { uid: user.uid, gid: user.gid } : {};
  execFileSync(
    initdb,
    ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync', '--no-locale'],
    { ...asUser, stdio: 'pipe', env: { ...process.env, LC_ALL: 'C' } },
  );
  const timeout = opts.startTimeoutMs ?? 20_000;
  const port = await freePort();
  let child: ChildProcess | undefined;
  let logText = '';
  let removed = false;
  const settings = {
    fsync: 'off',
    synchronous_commit: 'off',
    full_page_writes: 'off',
    max_connections: '50',
    shared_buffers: '64MB',
    ...opts.settings,
  };

  const start = async () => {
    const args = [
      '-D',
      dataDir,
      '-h',
      '127.0.0.1',
      '-p',
      String(port),
      '-k',
      sockDir,
      ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`]),
    ];
    const proc = spawn(postgresBin, args, { ...asUser, stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    const onData = (b: Buffer) => {
      logText += b.toString();
      if (logText.length > 1_000_000) logText = logText.slice(-500_000);
    };
    proc.stdout?.on('data', onData);
    proc.stderr?.on('data', onData);
    let exited = false;
    proc.once('exit', () => {
      exited = true;
    });
    const deadline = Date.now() + timeout;
    while (Date.now() < deadline && !exited) {
      if (/database system is ready to accept connections/.test(logText)) return;
      await sleep(20);
    }
    proc.kill('SIGKILL');
    throw new Error(`postgres did not start: ${logText.slice(-2000)}`);
  };

  const stop = async () => {
    const proc = child;
    child = undefined;
    // SIGINT = "fast" shutdown: disconnects clients, no waiting for them.
    await stopProcess(proc, 'SIGINT', 10_000);
    logText = logText.replace(/database system is ready to accept connections/g, '(was ready)');
  };

  await start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    dir: tmp.path,
    async restart() {
      await stop();
      await start();
    },
    stop,
    start,
    async close() {
      await stop();
      if (!removed) {
        removed = true;
        tmp.cleanup();
      }
    },
    log: () => logText,
  };
}
