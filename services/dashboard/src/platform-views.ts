// The platform views' wire shapes: what /api/platform/* answers. Types only and no imports, so
// the BFF (src/platform-api.ts) and the browser code (web/api.ts) share one definition.

/** One workload's current X.509-SVID (never the key, never the certificate itself). */
export interface Workload {
  spiffeId: string;
  /** Certificate serial number, hex. */
  serial: string;
  /** ISO 8601. */
  notAfter: string;
  /** Kubernetes selectors or other attestation facts, for display. */
  selectors?: string[];
}

export interface BundleAuthority {
  /** SHA-256 of the CA certificate's DER, hex. */
  fingerprint: string;
  subject: string;
  notAfter: string;
}

export interface TrustView {
  trustDomain: string;
  authorities: BundleAuthority[];
  federation: Array<{ trustDomain: string; endpoint?: string; authorities: BundleAuthority[] }>;
}

/** The fields the UI shows of one stored audit event. */
export interface AuditEventView {
  event_id: string;
  event_timestamp: string;
  correlation_id: string;
  chain_seq: number;
  actor_id: string;
  resource_id?: string | null;
  event_outcome: string;
  /** The person the actor acted for, when delegated. */
  on_behalf_of?: string | null;
  agent?: string | null;
  decision?: string | null;
  reason?: string | null;
}

export interface ChainVerification {
  correlation_id: string;
  is_valid: boolean;
  events_checked: number;
  broken_links: Array<{ event_id: string | null; chain_seq: number | null; reason: string }>;
  tampered_events: string[];
}

export interface ServiceAccountView {
  namespace: string;
  name: string;
  annotations: Record<string, string>;
  spiffeId?: string;
  /** The NATS permissions these annotations imply (the callout's own mapping). */
  nats?: { pub: { allow: string[]; deny: string[] }; sub: { allow: string[]; deny: string[] } };
}

export interface NatsClientView {
  name: string;
  account?: string;
  spiffeId?: string;
  pub: string[];
  sub: string[];
  connectedAt?: string;
}
