import { SecretsError, codeForStatus } from './errors.js';

/** What the library logs through: pino's signature, so a pino logger fits as is. */
export interface SecretsLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export const silentLogger: SecretsLogger = { debug() {}, info() {}, warn() {} };

export interface VaultHttpOptions {
  /** The server, e.g. `http://127.0.0.1:8200` (OpenBao or Vault: the same HTTP API). */
  address: string | URL;
  /** Enterprise/OpenBao namespace (`X-Vault-Namespace`), if any. */
  namespace?: string;
  /** Timeout of one request in ms. Default 10000. */
  timeoutMs?: number;
  fetch?: typeof globalThis.fetch;
}

/** The standard response envelope of the Vault/OpenBao HTTP API. */
export interface VaultResponse {
  request_id?: string;
  lease_id?: string;
  lease_duration?: number;
  renewable?: boolean;
  data?: Record<string, unknown> | null;
  auth?: {
    client_token: string;
    accessor?: string;
    lease_duration: number;
    renewable: boolean;
    policies?: string[];
  } | null;
  warnings?: string[] | null;
}

const MAX_RESPONSE_BYTES = 1024 * 1024;
const PATH_SEGMENT = /^[A-Za-z0-9._@:+=~-]+$/;

/** Checks an API path made of segments from configuration or callers (no `..`, no `?`). */
export function checkPath(path: string): string {
  const segs = path.split('/');
  if (!segs.every((s) => PATH_SEGMENT.test(s) && s !== '.' && s !== '..')) {
    throw new TypeError(`secrets: invalid path "${path.slice(0, 100)}"`);
  }
  return path;
}

/**
 * One HTTP call to the API: JSON in, the JSON envelope out. Errors carry the path and status
 * only, never the token or body (see SecretsError).
 */
export class VaultHttp {
  readonly address: string;
  readonly #namespace: string | undefined;
  readonly #timeoutMs: number;
  readonly #fetch: typeof globalThis.fetch;

  constructor(opts: VaultHttpOptions) {
    const u = new URL(String(opts.address));
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
      throw new TypeError('secrets: address must be an http(s) URL');
    }
    this.address = u.origin;
    this.#namespace = opts.namespace;
    this.#timeoutMs = opts.timeoutMs ?? 10_000;
    this.#fetch = opts.fetch ?? globalThis.fetch;
  }

  async request(
    method: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'LIST',
    path: string,
    opts: { token?: string; body?: unknown; what?: string } = {},
  ): Promise<VaultResponse> {
    checkPath(path);
    const what = opts.what ?? `${method} ${path}`;
    const headers: Record<string, string> = { accept: 'application/json' };
    if (opts.token) headers['x-vault-token'] = opts.token;
    if (this.#namespace) headers['x-vault-namespace'] = this.#namespace;
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await this.#fetch(`${this.address}/v1/${path}`, {
        method,
        headers,
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
        signal: AbortSignal.timeout(this.#timeoutMs),
        redirect: 'error',
      });
    } catch (err) {
      // The cause is a network error (ECONNREFUSED, timeout): it carries no request data.
      throw new SecretsError('ERR_SECRETS_UNAVAILABLE', `${what}: server unreachable`, {
        cause: err,
      });
    }
    const text = await readBounded(res, what);
    if (!res.ok) {
      throw new SecretsError(codeForStatus(res.status), `${what}: HTTP ${res.status}`, {
        status: res.status,
      });
    }
    if (res.status === 204 || text.length === 0) return {};
    try {
      return JSON.parse(text) as VaultResponse;
    } catch {
      throw new SecretsError('ERR_SECRETS_RESPONSE', `${what}: response is not JSON`, {
        status: res.status,
      });
    }
  }
}

async function readBounded(res: Response, what: string): Promise<string> {
  const len = Number(res.headers.get('content-length') ?? '0');
  if (len > MAX_RESPONSE_BYTES) {
    await res.body?.cancel();
    throw new SecretsError('ERR_SECRETS_RESPONSE', `${what}: response too large`);
  }
  const buf = await res.arrayBuffer();
  if (buf.byteLength > MAX_RESPONSE_BYTES) {
    throw new SecretsError('ERR_SECRETS_RESPONSE', `${what}: response too large`);
  }
  return new TextDecoder().decode(buf);
}
