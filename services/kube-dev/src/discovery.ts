import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError, methodNotAllowed, notFoundPath } from './errors.js';
import { send } from './http.js';
import {
  OPENAPI_V2,
  OPENAPI_V2_PROTOBUF,
  OPENAPI_V2_PROTOBUF_ACCEPT,
  OPENAPI_V2_PROTOBUF_TYPE,
  openApiDocument,
  openApiIndex,
} from './openapi.js';
import { API_GROUPS, DISCOVERY } from './resources.js';
import { jwks, type SigningKey } from './tokens.js';

const VERSION = {
  major: '1',
  minor: '32',
  gitVersion: 'v1.32.0-precinct-kube-dev',
  gitCommit: '0000000000000000000000000000000000000000',
  gitTreeState: 'clean',
  buildDate: '2026-01-01T00:00:00Z',
  goVersion: 'n/a',
  compiler: 'node',
  platform: `${process.platform}/${process.arch}`,
};

/** What the non-resource paths describe: the issuer and where clients reach the server. */
export interface DiscoveryContext {
  issuer: string;
  key: SigningKey;
  /** `host:port` clients should use (for /api serverAddressByClientCIDRs). */
  serverAddress: string;
}

/**
 * The non-resource paths: health, /version, OIDC discovery and the JWKS, API discovery
 * (/api, /apis, their groups and resource lists) and OpenAPI v2/v3. Authorization happens
 * before; these only answer.
 */
export class Discovery {
  constructor(private readonly ctx: DiscoveryContext) {}

  /** Answers an authorized non-resource request; 405 for a write, 404 for an unknown path. */
  async serve(
    req: IncomingMessage,
    res: ServerResponse,
    method: string,
    path: string,
    url: URL,
  ): Promise<void> {
    if (await this.servePublic(req, method, path, url, res)) return;
    this.serveNonResource(req, method, path, res);
  }

  private async servePublic(
    req: IncomingMessage,
    method: string,
    path: string,
    url: URL,
    res: ServerResponse,
  ) {
    if (method !== 'GET' && method !== 'HEAD') return false;
    const health = /^\/(healthz|livez|readyz)(\/.*)?$/.exec(path);
    if (health) {
      const body = url.searchParams.has('verbose')
        ? `[+]ping ok\n${health[1]} check passed\n`
        : 'ok';
      res.writeHead(200, {
        'Content-Type': 'text/plain; charset=utf-8',
        'Cache-Control': 'no-cache, private',
      });
      res.end(body);
      return true;
    }
    if (path === '/version') {
      send(res, 200, VERSION);
      return true;
    }
    if (path === '/.well-known/openid-configuration') {
      send(res, 200, {
        issuer: this.ctx.issuer,
        jwks_uri: `${this.ctx.issuer}/openid/v1/jwks`,
        response_types_supported: ['id_token'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['RS256'],
      });
      return true;
    }
    if (path === '/openid/v1/jwks') {
      // Served only as application/jwk-set+json, like kube-apiserver (406 for a client that
      // accepts only application/json).
      const accept = req.headers.accept;
      if (
        accept &&
        !/(^|,)\s*(\*\/\*|application\/\*|application\/jwk-set\+json)\s*(;|,|$)/i.test(accept)
      ) {
        throw new ApiError(
          406,
          'NotAcceptable',
          '406: Not Acceptable\n\nAvailable representations: application/jwk-set+json',
        );
      }
      const body = JSON.stringify(await jwks(this.ctx.key));
      res.writeHead(200, {
        'Content-Type': 'application/jwk-set+json',
        'Content-Length': Buffer.byteLength(body),
      });
      res.end(body);
      return true;
    }
    return false;
  }

  private serveNonResource(
    req: IncomingMessage,
    method: string,
    path: string,
    res: ServerResponse,
  ) {
    if (method !== 'GET' && method !== 'HEAD') throw methodNotAllowed();
    if (path === '/api') {
      return send(res, 200, {
        kind: 'APIVersions',
        versions: ['v1'],
        serverAddressByClientCIDRs: [
          { clientCIDR: '0.0.0.0/0', serverAddress: this.ctx.serverAddress },
        ],
      });
    }
    if (path === '/api/v1') return send(res, 200, resourceList('v1'));
    if (path === '/apis') {
      return send(res, 200, {
        kind: 'APIGroupList',
        apiVersion: 'v1',
        groups: API_GROUPS.map(apiGroup),
      });
    }
    if (path === '/openapi/v3') return send(res, 200, openApiIndex());
    if (path === '/openapi/v2') {
      if (OPENAPI_V2_PROTOBUF_ACCEPT.test(req.headers.accept ?? '')) {
        res.writeHead(200, {
          'Content-Type': OPENAPI_V2_PROTOBUF_TYPE,
          'Content-Length': OPENAPI_V2_PROTOBUF.length,
        });
        res.end(OPENAPI_V2_PROTOBUF);
        return;
      }
      return send(res, 200, OPENAPI_V2);
    }
    if (path.startsWith('/openapi/v3/')) {
      const doc = openApiDocument(path.slice('/openapi/v3/'.length));
      if (doc) return send(res, 200, doc);
    }
    const g = /^\/apis\/([^/]+)(?:\/([^/]+))?$/.exec(path);
    if (g && API_GROUPS.includes(g[1]!)) {
      if (!g[2]) return send(res, 200, { kind: 'APIGroup', apiVersion: 'v1', ...apiGroup(g[1]!) });
      if (g[2] === 'v1') return send(res, 200, resourceList(`${g[1]}/v1`));
    }
    throw notFoundPath();
  }
}

function apiGroup(name: string) {
  const gv = { groupVersion: `${name}/v1`, version: 'v1' };
  return { name, versions: [gv], preferredVersion: gv };
}

function resourceList(groupVersion: string) {
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion,
    resources: DISCOVERY[groupVersion] ?? [],
  };
}
