import type { Server } from 'node:net';

export interface ListenOptions {
  /** Default `::` (dual-stack: IPv6 with IPv4-mapped addresses). */
  host: string;
  /** 0 picks a free port. */
  port: number;
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
      return attempt('0.0.0.0');
    }
    throw err;
  }
}

/** `host:port`, bracketing IPv6 literals, for URLs and kubeconfigs. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}
