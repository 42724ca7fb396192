import {
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { UsageError } from '@precinct/runtime';

/**
 * The state folder of one `precinct up`: a lock that names the process holding it, and a
 * state file that `precinct status`, `down` and `logs` read. One folder, one platform: a
 * second `up` on the same folder would overwrite the first one's kubeconfig and sockets.
 */

/** One running part of the platform, as `precinct status --json` prints it. */
export interface PartState {
  name: string;
  /** Where clients reach it (URL or unix: address). */
  url: string;
  /** A plain-HTTP endpoint that answers 200 when the part is healthy. */
  healthUrl?: string;
  /** CA (PEM file) that signed an https healthUrl's certificate. */
  caFile?: string;
  /** The process that runs it, when it is not the `up` process itself (nats-server). */
  pid?: number;
}

export interface UpState {
  pid: number;
  startedAt: string;
  dataDir: string;
  parts: PartState[];
}

export const LOCK_FILE = 'up.lock';
export const STATE_FILE = 'up.json';
export const LOG_DIR = 'logs';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pid in the folder's lock when that process still runs, else undefined. */
export function lockHolder(dataDir: string): { pid: number; startedAt?: string } | undefined {
  let raw: string;
  try {
    raw = readFileSync(join(dataDir, LOCK_FILE), 'utf8');
  } catch {
    return undefined;
  }
  const m = /^(\d+)(?:\s+(\S+))?/.exec(raw.trim());
  if (!m) return undefined;
  const pid = Number(m[1]);
  return alive(pid) ? { pid, ...(m[2] ? { startedAt: m[2] } : {}) } : undefined;
}

/**
 * Takes the folder's lock for this process, or throws a UsageError naming the process that
 * holds it. A lock left by a process that no longer runs (kill -9, a crash) is taken over.
 * Returns the release function.
 */
export function acquireLock(dataDir: string): () => void {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const path = join(dataDir, LOCK_FILE);
  const content = `${process.pid} ${new Date().toISOString()}\n`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeFileSync(fd, content);
      closeSync(fd);
      return () => {
        if (lockHolder(dataDir)?.pid === process.pid) rmSync(path, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = lockHolder(dataDir);
      if (holder) {
        throw new Error(
          `${resolve(dataDir)} is in use by another precinct up (pid ${holder.pid}` +
            `${holder.startedAt ? `, started ${holder.startedAt}` : ''}); ` +
            `stop it with \`npx precinct down --data-dir ${dataDir}\` or use another --data-dir`,
        );
      }
      rmSync(path, { force: true });
    }
  }
  throw new Error(`cannot take the lock ${path}`);
}

/** Writes the state file atomically (0600), for `status`, `down` and `logs`. */
export function writeState(dataDir: string, state: UpState): void {
  const path = join(dataDir, STATE_FILE);
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
  renameSync(tmp, path);
}

/** The state of the `up` running on `dataDir`, or a UsageError saying none runs there. */
export function readState(dataDir: string): UpState {
  const holder = lockHolder(dataDir);
  if (!holder) {
    throw new UsageError(
      `no precinct up is running on ${resolve(dataDir)} (start one with \`npm start\` or \`npx precinct up\`)`,
    );
  }
  try {
    const state = JSON.parse(readFileSync(join(dataDir, STATE_FILE), 'utf8')) as UpState;
    if (state.pid === holder.pid) return state;
  } catch {
    /* still starting */
  }
  return { pid: holder.pid, startedAt: holder.startedAt ?? '', dataDir, parts: [] };
}

export function removeState(dataDir: string): void {
  rmSync(join(dataDir, STATE_FILE), { force: true });
}
