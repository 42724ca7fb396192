// Same-origin calls to the BFF: the session cookie goes along by itself (httpOnly, never read
// here) and nothing in the page ever holds a token.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function parse<T>(res: Response): Promise<T> {
  const text = await res.text();
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  if (!res.ok && !(typeof body === 'object' && body !== null && 'granted' in body)) {
    const title = (body as { title?: unknown } | undefined)?.title;
    throw new ApiError(res.status, typeof title === 'string' ? title : `HTTP ${res.status}`);
  }
  return body as T;
}

export async function get<T>(path: string): Promise<T> {
  return parse<T>(await fetch(path, { headers: { accept: 'application/json' } }));
}

export async function post<T>(path: string, body?: unknown): Promise<T> {
  return parse<T>(
    await fetch(path, {
      method: 'POST',
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    }),
  );
}

/** PUT or DELETE, for the routes that store or remove something. */
export async function send<T>(method: 'PUT' | 'DELETE', path: string, body?: unknown): Promise<T> {
  return parse<T>(
    await fetch(path, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    }),
  );
}

/** A person's third-party token as the browser may know it: whether one is stored, and when. */
export interface Connection {
  provider: string;
  stored: boolean;
  updated_at?: string;
}

export interface Me {
  user: string;
  spiffe_id: string;
  /** Where the person came from: demo passwords or an OpenID Provider. */
  source: 'demo' | 'oidc';
  /** Holds the auditor role: the Audit view and /api/platform/audit/* are theirs alone. */
  auditor: boolean;
}
export interface AuthConfig {
  source: 'demo' | 'oidc';
  login_url?: string;
  issuer?: string;
}
export interface Person {
  id: string;
  name: string;
  departments: string[];
  spiffe_id: string;
}
export interface AgentInfo {
  id: string;
  name: string;
  capabilities: string[];
  spiffe_id: string;
}
export interface DocumentInfo {
  id: string;
  title: string;
  required_departments: string[];
  sensitivity: string;
}
export interface Decision {
  granted: boolean;
  reason: string;
  details?: {
    user_departments?: string[];
    agent_capabilities?: string[];
    effective_permissions?: string[];
    required?: string[];
  };
}

// The platform views' shapes are the BFF's own (one definition, types only).
export type {
  AuditEventView as AuditEvent,
  BundleAuthority as Authority,
  ChainVerification,
  NatsClientView as NatsClient,
  ServiceAccountView as ServiceAccount,
  TrustView,
  Workload,
} from '../src/platform-views.js';

/** The last path segment of a SPIFFE ID (`spiffe://td/agent/gpt4` -> `gpt4`). */
export const short = (id: string | null | undefined) => (id ? id.split('/').pop()! : '');
