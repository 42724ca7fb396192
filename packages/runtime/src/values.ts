import { UsageError } from './command.js';

/**
 * Parsers for the values every service takes from flags and environment variables. Each one
 * names the setting in its error (`--kube-port`, `DATABASE_URL`) and echoes the value only
 * where it cannot be a secret: one grammar per kind of value, so `5m` means the same to every
 * command and a typo is an error, never a silent default.
 */

/** A whole number from 0 to 65535 (0 = any free port). */
export function parsePort(raw: string, name: string): number {
  const v = raw.trim();
  if (!/^\d{1,5}$/.test(v) || Number(v) > 65535) {
    throw new UsageError(
      `${name} must be a port number from 0 to 65535 (0 = any free port), got "${raw}"`,
    );
  }
  return Number(v);
}

/** `HOST:PORT`, `[IPv6]:PORT` or `:PORT` (keeps `fallbackHost`). */
export function parseListen(
  raw: string,
  name: string,
  fallbackHost = '::',
): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(raw.trim());
  if (!m || Number(m[3]) > 65535) {
    throw new UsageError(`${name} must be HOST:PORT, [IPv6]:PORT or :PORT, got "${raw}"`);
  }
  return { host: m[1] ?? (m[2] || fallbackHost), port: Number(m[3]) };
}

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/**
 * A duration in seconds: `90` (seconds), `90s`, `15m`, `1h`, `2d`, or a sum such as `1h30m`.
 * Units go from larger to smaller and appear once, as Go's time.ParseDuration users expect.
 */
export function parseDuration(raw: string, name: string): number {
  const v = raw.trim();
  const fail = () =>
    new UsageError(`${name} must be a duration such as 90s, 15m, 1h, 2d or 1h30m, got "${raw}"`);
  if (/^\d{1,9}$/.test(v)) return Number(v);
  const m = /^(?:(\d{1,9})d)?(?:(\d{1,9})h)?(?:(\d{1,9})m)?(?:(\d{1,9})s)?$/.exec(v);
  if (!m || v === '') throw fail();
  const [, d, h, mi, s] = m;
  const total =
    Number(d ?? 0) * UNIT_SECONDS.d! +
    Number(h ?? 0) * UNIT_SECONDS.h! +
    Number(mi ?? 0) * UNIT_SECONDS.m! +
    Number(s ?? 0);
  if (!Number.isSafeInteger(total)) throw fail();
  return total;
}

/** An absolute `http:` or `https:` URL. */
export function parseHttpUrl(raw: string, name: string): URL {
  let u: URL;
  try {
    u = new URL(raw.trim());
  } catch {
    throw new UsageError(`${name} must be an http:// or https:// URL, got "${raw}"`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new UsageError(`${name} must be an http:// or https:// URL, got scheme "${u.protocol}"`);
  }
  if (u.username || u.password) {
    throw new UsageError(`${name} must not carry credentials in the URL`);
  }
  return u;
}

/** The URL with its password replaced, for messages and logs. */
export function redactUrl(raw: string): string {
  try {
    const u = new URL(raw);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparsable URL)';
  }
}

/**
 * A PostgreSQL connection URL (`postgres://` or `postgresql://`, as libpq and node-postgres
 * accept). Anything else is refused with a sentence that says so: a `mysql://` URL, a bare
 * word, a URL without a host (unless `?host=/socket/dir` names a unix socket). The value may
 * hold a password, so it is never echoed.
 */
export function parseDatabaseUrl(raw: string, name = 'DATABASE_URL'): string {
  const v = raw.trim();
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new UsageError(
      `${name} must be a PostgreSQL URL such as postgres://user:password@host:5432/db (it does not parse as a URL)`,
    );
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new UsageError(
      `${name} must be a PostgreSQL URL (postgres:// or postgresql://); scheme "${u.protocol.replace(/:$/, '')}" is not supported`,
    );
  }
  if (!u.hostname && !u.searchParams.get('host')) {
    throw new UsageError(`${name} names no host (postgres://HOST[:PORT]/DB, or ?host=/socket/dir)`);
  }
  if (u.port && Number(u.port) === 0) {
    throw new UsageError(`${name} has port 0`);
  }
  return v;
}
