import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';

/**
 * A second "host" for tests: a Linux network namespace joined to this one by a veth pair, with
 * IPv4 and IPv6 on both ends. A process started in it (`exec`) is like a container or another
 * machine: it reaches this host only through `hostAddress4` / `hostAddress6`, never through
 * loopback, which is what catches servers bound to `127.0.0.1`/`[::1]` and URLs that name
 * `localhost`.
 */
export interface NetnsHost {
  name: string;
  /** This host's addresses as seen from the namespace. */
  hostAddress4: string;
  hostAddress6: string;
  /** The namespace's own addresses. */
  nsAddress4: string;
  nsAddress6: string;
  /** Runs a program inside the namespace; never rejects on a non-zero exit. */
  exec(
    file: string,
    args: string[],
    opts?: { timeoutMs?: number; env?: NodeJS.ProcessEnv },
  ): Promise<{ code: number | null; stdout: string; stderr: string }>;
  /** Deletes the namespace and the veth pair (idempotent). */
  close(): void;
}

const IP = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'].find((p) => existsSync(p));

/**
 * For `test(..., { skip: netnsSkip() })`: false when namespaces can be made here (root and
 * iproute2), else a skip message; with PRECINCT_REQUIRE_PEERS=1 a missing capability throws.
 */
export function netnsSkip(): string | false {
  const why = !IP
    ? 'iproute2 `ip` not found (apt-get install iproute2)'
    : process.getuid?.() !== 0
      ? 'network namespaces need root'
      : undefined;
  if (!why) return false;
  if (process.env.PRECINCT_REQUIRE_PEERS === '1') throw new Error(`required peer missing: ${why}`);
  return `skipped: ${why}`;
}

function ip(...args: string[]): void {
  execFileSync(IP!, args, { stdio: 'pipe' });
}

/** Creates a namespace with a veth link to this host, on a random private /30 and /64. */
export function createNetnsHost(): NetnsHost {
  if (!IP) throw new Error('iproute2 `ip` not found');
  const tag = randomBytes(3).toString('hex');
  const name = `precinct-${tag}`;
  // Interface names are limited to 15 characters.
  const hostIf = `pvh${tag}`;
  const nsIf = `pvn${tag}`;
  const b = randomBytes(2);
  const net4 = `10.${200 + (b[0]! % 50)}.${b[1]}`;
  const net6 = `fd00:7072:6563:${tag.slice(0, 4)}`;
  const h = {
    name,
    hostAddress4: `${net4}.1`,
    nsAddress4: `${net4}.2`,
    hostAddress6: `${net6}::1`,
    nsAddress6: `${net6}::2`,
  };
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    for (const args of [
      ['link', 'del', hostIf],
      ['netns', 'del', name],
    ]) {
      try {
        ip(...args);
      } catch {
        /* already gone */
      }
    }
  };
  try {
    ip('netns', 'add', name);
    ip('link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf);
    ip('link', 'set', nsIf, 'netns', name);
    ip('addr', 'add', `${h.hostAddress4}/30`, 'dev', hostIf);
    ip('-6', 'addr', 'add', `${h.hostAddress6}/64`, 'dev', hostIf, 'nodad');
    ip('link', 'set', hostIf, 'up');
    ip('-n', name, 'addr', 'add', `${h.nsAddress4}/30`, 'dev', nsIf);
    ip('-n', name, '-6', 'addr', 'add', `${h.nsAddress6}/64`, 'dev', nsIf, 'nodad');
    ip('-n', name, 'link', 'set', nsIf, 'up');
    ip('-n', name, 'link', 'set', 'lo', 'up');
  } catch (err) {
    close();
    throw err;
  }
  return {
    ...h,
    exec(file, args, opts = {}) {
      return new Promise((resolve) => {
        execFile(
          IP!,
          ['netns', 'exec', name, file, ...args],
          { timeout: opts.timeoutMs ?? 30_000, env: opts.env ?? process.env },
          (err, stdout, stderr) => {
            const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
            resolve({ code, stdout: String(stdout), stderr: String(stderr) });
          },
        );
      });
    },
    close,
  };
}
