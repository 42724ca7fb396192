import { isIP } from 'node:net';
import { isAbsolute } from 'node:path';
import { SpiffeError } from '../errors.js';

/** The environment variable the SPIFFE Workload Endpoint spec (section 4) names. */
export const ENDPOINT_SOCKET_ENV = 'SPIFFE_ENDPOINT_SOCKET';

/** A parsed Workload API endpoint and the gRPC target string that dials it. */
export interface WorkloadEndpoint {
  readonly kind: 'unix' | 'tcp';
  /** The address as given (`unix:///run/spire/agent.sock`, `tcp://127.0.0.1:8081`). */
  readonly address: string;
  /** The target string for @grpc/grpc-js (`unix:///abs/path`, `ipv4:1.2.3.4:p`, `ipv6:[::1]:p`). */
  readonly grpcTarget: string;
}

function invalid(address: string, reason: string): SpiffeError {
  return new SpiffeError(
    'ERR_WORKLOADAPI_ENDPOINT_INVALID',
    `workloadapi: invalid endpoint address "${address}": ${reason}`,
  );
}

/**
 * Parses a Workload API endpoint address per the SPIFFE Workload Endpoint spec (section 4):
 * `unix:` with an absolute path and no authority, or `tcp:` with an IP literal and a port
 * and nothing else. Hostnames are refused on `tcp:` because the spec requires an IP, and
 * name resolution would add a trust dependency on DNS.
 */
export function parseWorkloadEndpoint(address: string): WorkloadEndpoint {
  if (typeof address !== 'string' || address.trim() === '') {
    throw new SpiffeError(
      'ERR_WORKLOADAPI_ENDPOINT_MISSING',
      `workloadapi: no endpoint address (set ${ENDPOINT_SOCKET_ENV} or pass one)`,
    );
  }
  let url: URL;
  try {
    url = new URL(address);
  } catch (cause) {
    throw Object.assign(invalid(address, 'not a URI'), { cause });
  }
  if (url.protocol === 'unix:') {
    // WHATWG URL keeps "unix://host/path" as host "host"; "unix:///p" and "unix:/p" as no host.
    if (url.host !== '' || url.username !== '' || url.password !== '') {
      throw invalid(address, 'unix endpoints must not have an authority');
    }
    if (url.search !== '' || url.hash !== '') {
      throw invalid(address, 'unix endpoints must not have a query or fragment');
    }
    const path = decodeURIComponent(url.pathname);
    if (!path || !isAbsolute(path)) {
      throw invalid(address, 'unix endpoints must have an absolute path');
    }
    if (path.includes('\0')) throw invalid(address, 'path contains a NUL byte');
    return { kind: 'unix', address, grpcTarget: `unix://${path}` };
  }
  if (url.protocol === 'tcp:') {
    if (url.username !== '' || url.password !== '') {
      throw invalid(address, 'tcp endpoints must not have userinfo');
    }
    if ((url.pathname !== '' && url.pathname !== '/') || /^tcp:\/\/[^/]*\/./.test(address)) {
      throw invalid(address, 'tcp endpoints must not have a path');
    }
    if (/^tcp:\/\/[^/]*\/$/.test(address)) {
      throw invalid(address, 'tcp endpoints must not have a path');
    }
    if (url.search !== '' || url.hash !== '' || address.includes('?') || address.includes('#')) {
      throw invalid(address, 'tcp endpoints must not have a query or fragment');
    }
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    const family = isIP(host);
    if (family === 0) throw invalid(address, 'tcp endpoints need an IP address, not a hostname');
    if (url.port === '') throw invalid(address, 'tcp endpoints need a port');
    const port = Number(url.port);
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw invalid(address, 'port out of range');
    }
    const grpcTarget = family === 4 ? `ipv4:${host}:${port}` : `ipv6:[${host}]:${port}`;
    return { kind: 'tcp', address, grpcTarget };
  }
  throw invalid(address, 'scheme must be unix or tcp');
}

/**
 * The endpoint to dial: the explicit address when given, otherwise `SPIFFE_ENDPOINT_SOCKET`.
 */
export function resolveWorkloadEndpoint(
  address?: string,
  env: NodeJS.ProcessEnv = process.env,
): WorkloadEndpoint {
  return parseWorkloadEndpoint(address ?? env[ENDPOINT_SOCKET_ENV] ?? '');
}
