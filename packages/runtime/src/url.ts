import { isIP } from 'node:net';
import { formatHostPort } from './listen.js';

/**
 * The one rule for "the address others should use to reach a listener" (kubeconfigs, OIDC
 * issuers, admin URLs, printed URLs):
 *
 * 1. an explicit advertise host (`--advertise-host`) wins, whatever the bind address, because
 *    only the operator knows how a container or another network namespace sees this one;
 * 2. otherwise a wildcard bind (`::`, `0.0.0.0`, empty) advertises `localhost`, since a
 *    wildcard cannot be dialled and the process itself is reachable on loopback;
 * 3. otherwise the bind host itself, since that is the only address the listener answers on.
 *
 * IPv6 literals are bracketed in URLs; brackets given by the caller are accepted.
 */

/** Advertised when the bind address is a wildcard and no advertise host is set. */
export const LOOPBACK_ADVERTISE_HOST = 'localhost';

function unbracket(host: string): string {
  const h = host.trim();
  return h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h;
}

/** True for the addresses that mean "every interface": `::`, `0.0.0.0`, `::0`, `''`. */
export function isWildcardHost(host: string): boolean {
  const h = unbracket(host).toLowerCase();
  if (h === '' || h === '0.0.0.0' || h === '::ffff:0.0.0.0') return true;
  return isIP(h) === 6 && /^[0:]+$/.test(h);
}

// A host that can sit in a URL's authority as is: a DNS name or IPv4 address, or an IPv6
// literal (bracketed later). Anything else (spaces, '/', '@', zone ids) would make a URL that
// either fails to parse or points somewhere else, so it is refused rather than encoded.
function checkHost(host: string, setting: string): string {
  if (host === '') throw new TypeError(`${setting} must not be empty`);
  if (isIP(host) === 6 && !host.includes('%')) return host;
  if (/^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$/.test(host) && host.length <= 253)
    return host;
  throw new TypeError(
    `${setting} must be a host name or an IP address, got ${JSON.stringify(host)}`,
  );
}

/**
 * The host (no brackets) others should dial for a listener bound to `bindHost`; see the rule
 * above. Throws TypeError on an empty or malformed advertise host (never a silent fallback).
 */
export function advertisedHost(bindHost: string, advertiseHost?: string): string {
  if (advertiseHost !== undefined) return checkHost(unbracket(advertiseHost), 'advertise host');
  if (isWildcardHost(bindHost)) return LOOPBACK_ADVERTISE_HOST;
  return checkHost(unbracket(bindHost), 'bind host');
}

export interface AdvertisedUrlOptions {
  scheme: 'http' | 'https';
  /** The host the listener is bound to, as given to `listen()`. */
  bindHost: string;
  /** The port it is bound to (the real one, after `listen()` picked it for port 0). */
  port: number;
  /** `--advertise-host`, when set. */
  advertiseHost?: string | undefined;
}

/**
 * `scheme://host:port` others should use to reach a listener (no trailing slash, IPv6
 * bracketed); see the rule above. Throws TypeError on a malformed host or a port outside
 * 1-65535 (a port-0 URL cannot be dialled: pass the bound port).
 */
export function advertisedUrl(opts: AdvertisedUrlOptions): string {
  if (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535) {
    throw new TypeError(`advertised port must be the bound port (1-65535), got ${opts.port}`);
  }
  if (opts.scheme !== 'http' && opts.scheme !== 'https') {
    throw new TypeError(`advertised URL scheme must be http or https, got ${String(opts.scheme)}`);
  }
  const host = advertisedHost(opts.bindHost, opts.advertiseHost);
  return `${opts.scheme}://${formatHostPort(host, opts.port)}`;
}
