import type { Server } from 'node:net';

export interface ListenOptions {
  /** Default `::` (dual-stack: IPv6 with IPv4-mapped addresses). */
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** The flag or variable that sets this port, named in the error when it cannot be used. */
  setting?: string;
}

/**
 * Thrown by {@link listen} when the address cannot be used, with a message that says why in
 * words (the port is taken, needs privileges, the address is not on this machine) and which
 * setting changes it. `code` is the system's (`EADDRINUSE`, ...); the message is complete, so
 * the system error is kept as `cause` only when it is not one of those.
 */
export class ListenError extends Error {
  readonly code: string;
  constructor(message: string, code: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ListenError';
    this.code = code;
  }
}

function listenError(err: NodeJS.ErrnoException, host: string, opts: ListenOptions): ListenError {
  const where = formatHostPort(host, opts.port);
  const change = opts.setting
    ? `; choose another with ${opts.setting} (0 picks any free port)`
    : '';
  switch (err.code) {
    case 'EADDRINUSE':
      return new ListenError(
        `cannot listen on ${where}: port ${opts.port} is already in use by another process${change}`,
        err.code,
      );
    case 'EACCES':
      return new ListenError(
        `cannot listen on ${where}: permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)${change}`,
        err.code,
      );
    case 'EADDRNOTAVAIL':
      return new ListenError(
        `cannot listen on ${where}: ${host} is not an address of this machine`,
        err.code,
      );
    default:
      return new ListenError(`cannot listen on ${where}: ${err.message}`, err.code ?? 'EUNKNOWN', {
        cause: err,
      });
  }
}

/**
 * HOST and PORT environment overrides on top of a service's defaults. A PORT that is not a
 * whole number from 0 to 65535 is an error, never silently replaced by the default.
 */
export function listenOptionsFromEnv(
  defaults: ListenOptions,
  env: NodeJS.ProcessEnv = process.env,
  names: { host: string; port: string } = { host: 'HOST', port: 'PORT' },
): ListenOptions {
  const host = env[names.host]?.trim() || defaults.host;
  const rawPort = env[names.port]?.trim();
  let port = defaults.port;
  if (rawPort !== undefined && rawPort !== '') {
    if (!/^\d{1,5}$/.test(rawPort) || Number(rawPort) > 65535) {
      throw new Error(`${names.port} must be a port number from 0 to 65535, got "${rawPort}"`);
    }
    port = Number(rawPort);
  }
  return { host, port };
}

/**
 * Listens and resolves with the bound port. On `::` Node accepts IPv4 too (ipv6Only false);
 * on a machine without IPv6 it falls back to `0.0.0.0` so the default never fails to start.
 */
export async function listen(server: Server, opts: ListenOptions): Promise<number> {
  const attempt = (host: string) =>
    new Promise<number>((resolve, reject) => {
      const onError = (err: Error) => {
        server.off('listening', onListening);
        reject(err);
      };
      const onListening = () => {
        server.off('error', onError);
        const addr = server.address();
        resolve(typeof addr === 'object' && addr ? addr.port : opts.port);
      };
      server.once('error', onError);
      server.once('listening', onListening);
      server.listen({ host, port: opts.port, ipv6Only: false });
    });
  try {
    return await attempt(opts.host);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (opts.host === '::' && (code === 'EAFNOSUPPORT' || code === 'EADDRNOTAVAIL')) {
      try {
        return await attempt('0.0.0.0');
      } catch (err4) {
        throw listenError(err4 as NodeJS.ErrnoException, '0.0.0.0', opts);
      }
    }
    throw listenError(err as NodeJS.ErrnoException, opts.host, opts);
  }
}

/** `host:port`, bracketing IPv6 literals, for URLs and kubeconfigs. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}
