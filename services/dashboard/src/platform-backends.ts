// Ready-made backends for platform-api.ts, for `precinct up` to wire: the audit store read over
// SPIFFE mTLS as an authorized reader. The caller owns the dispatcher (an undici Agent whose
// connector presents the reader's SVID and accepts only the store's SPIFFE ID).
import { request, type Dispatcher } from 'undici';
import type { X509Source } from '@precinct/spiffe/workloadapi';
import type {
  BundleAuthority,
  Workload,
  AuditEventView,
  AuditFilter,
  ChainVerification,
  PlatformBackends,
} from './platform-api.js';

export interface AuditStoreBackendOptions {
  /** The audit store's `https://` URL. */
  url: string;
  dispatcher: Dispatcher;
}

interface StoredEventLike {
  event_id: string;
  event_timestamp: string;
  correlation_id: string;
  chain_seq: number;
  actor_id: string;
  resource_id?: string | null;
  event_outcome: string;
  event_data?: Record<string, unknown> | null;
}

const str = (v: unknown) => (typeof v === 'string' ? v : null);

function query(f: AuditFilter, forExport: boolean): string {
  const q = new URLSearchParams();
  if (f.correlationId) q.set('correlation_id', f.correlationId);
  if (!forExport) {
    if (f.actor) q.set('actor_id', f.actor);
    if (f.outcome) q.set('event_outcome', f.outcome);
    q.set('limit', String(Math.min(f.limit ?? 100, 1000)));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** The audit part of PlatformBackends over the audit store's HTTP API. */
export function auditStoreBackend(
  o: AuditStoreBackendOptions,
): NonNullable<PlatformBackends['audit']> {
  const call = async (path: string, body?: unknown) => {
    const res = await request(`${o.url}${path}`, {
      dispatcher: o.dispatcher,
      method: body === undefined ? 'GET' : 'POST',
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      headersTimeout: 10_000,
      bodyTimeout: 30_000,
    });
    const text = await res.body.text();
    // The store's problem detail stays here: the browser is told "unavailable".
    if (res.statusCode !== 200) throw new Error(`audit store answered ${res.statusCode}`);
    return { text, headers: res.headers };
  };
  return {
    async list(f) {
      const { text } = await call(`/api/v1/audit/events${query(f, false)}`);
      const events = (JSON.parse(text) as { data: StoredEventLike[] }).data;
      return events.map((e): AuditEventView => ({
        event_id: e.event_id,
        event_timestamp: e.event_timestamp,
        correlation_id: e.correlation_id,
        chain_seq: e.chain_seq,
        actor_id: e.actor_id,
        resource_id: e.resource_id ?? null,
        event_outcome: e.event_outcome,
        on_behalf_of: str(e.event_data?.on_behalf_of),
        agent: str(e.event_data?.agent),
        decision: str(e.event_data?.decision),
        reason: str(e.event_data?.reason),
      }));
    },
    async verifyChain(correlationId) {
      const { text } = await call('/api/v1/audit/verify-chain', { correlation_id: correlationId });
      return JSON.parse(text) as ChainVerification;
    },
    async export(f) {
      const { text, headers } = await call(`/api/v1/audit/export${query(f, true)}`);
      const h = (k: string) => {
        const v = headers[k];
        return typeof v === 'string' ? v : undefined;
      };
      const signature = h('x-audit-export-signature');
      const algorithm = h('x-audit-export-signature-alg');
      const keyId = h('x-audit-export-key-id');
      return {
        ndjson: text,
        ...(signature ? { signature } : {}),
        ...(algorithm ? { algorithm } : {}),
        ...(keyId ? { keyId } : {}),
      };
    },
  };
}

function workloadOf(source: X509Source): Workload {
  const svid = source.getX509Svid();
  const leaf = svid.certificates[0]!;
  return {
    spiffeId: svid.id.toString(),
    serial: leaf.serialNumber,
    notAfter: new Date(leaf.validTo).toISOString(),
  };
}

function authoritiesOf(source: X509Source, td: string): BundleAuthority[] {
  return source
    .getX509BundleForTrustDomain(td)
    .x509Authorities()
    .map((c) => ({
      fingerprint: c.fingerprint256.replaceAll(':', '').toLowerCase(),
      subject: c.subject.replaceAll('\n', ', '),
      notAfter: new Date(c.validTo).toISOString(),
    }));
}

/**
 * The workloads part of PlatformBackends from live X509Sources (the workloads' own Workload API
 * streams): current SVIDs, each rotation as it arrives, and the trust domain's bundle as the
 * first source sees it. Certificates and keys never leave: only IDs, serials and dates.
 */
export function x509SourcesBackend(
  sources: readonly X509Source[],
  trustDomain: string,
): NonNullable<PlatformBackends['workloads']> {
  return {
    list: async () => sources.map(workloadOf),
    onRotation(cb) {
      const offs = sources.map((s) => {
        const on = () => cb(workloadOf(s));
        s.on('update', on);
        return () => s.off('update', on);
      });
      return () => offs.forEach((off) => off());
    },
    trust: async () => ({
      trustDomain,
      authorities: sources[0] ? authoritiesOf(sources[0], trustDomain) : [],
      federation: [],
    }),
  };
}
