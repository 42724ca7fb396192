import { Counter, Registry, collectDefaultMetrics } from 'prom-client';

/** The identity server's Prometheus metrics, in a registry of its own (one per server). */
export interface IdentityMetrics {
  registry: Registry;
  x509SvidsIssued: Counter;
  jwtSvidsIssued: Counter;
  rotations: Counter<'event'>;
  attestationFailures: Counter<'reason'>;
  bindingsRevoked: Counter<'reason'>;
}

export function createMetrics(defaultMetrics = true): IdentityMetrics {
  const registry = new Registry();
  if (defaultMetrics) collectDefaultMetrics({ register: registry });
  return {
    registry,
    x509SvidsIssued: new Counter({
      name: 'precinct_identity_x509_svids_issued_total',
      help: 'X.509-SVIDs signed',
      registers: [registry],
    }),
    jwtSvidsIssued: new Counter({
      name: 'precinct_identity_jwt_svids_issued_total',
      help: 'JWT-SVIDs signed',
      registers: [registry],
    }),
    rotations: new Counter({
      name: 'precinct_identity_key_rotations_total',
      help: 'CA and JWT key rotation steps (prepared, activated, expired)',
      labelNames: ['event'],
      registers: [registry],
    }),
    attestationFailures: new Counter({
      name: 'precinct_identity_attestation_failures_total',
      help: 'Workload attestations refused, by reason',
      labelNames: ['reason'],
      registers: [registry],
    }),
    bindingsRevoked: new Counter({
      name: 'precinct_identity_bindings_revoked_total',
      help: 'Workload bindings ended before their time: ServiceAccount or pod deleted or replaced',
      labelNames: ['reason'],
      registers: [registry],
    }),
  };
}
