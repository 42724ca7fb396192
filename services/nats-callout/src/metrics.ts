import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** The callout's Prometheus metrics, on a registry of its own (no global state). */
export interface CalloutMetrics {
  registry: Registry;
  requests: Counter<'result' | 'reason'>;
  decisionSeconds: Histogram<'result'>;
  filteredEntries: Counter<'annotation' | 'reason'>;
  cacheSize: Gauge;
  cacheSynced: Gauge;
  kubeApiHealthy: Gauge;
  watchRestarts: Counter;
  natsConnected: Gauge;
  jwksKeys: Gauge;
  jwksReady: Gauge;
}

export function createMetrics(): CalloutMetrics {
  const registry = new Registry();
  return {
    registry,
    requests: new Counter({
      name: 'nats_auth_requests_total',
      help: 'Authorization requests by result (allowed, denied, dropped) and reason',
      labelNames: ['result', 'reason'] as const,
      registers: [registry],
    }),
    decisionSeconds: new Histogram({
      name: 'nats_auth_decision_duration_seconds',
      help: 'Time from receiving an authorization request to sending the response',
      labelNames: ['result'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
    filteredEntries: new Counter({
      name: 'nats_auth_annotation_entries_dropped_total',
      help: 'ServiceAccount annotation entries dropped (reserved _INBOX/_REPLY claims, invalid subjects)',
      labelNames: ['annotation', 'reason'] as const,
      registers: [registry],
    }),
    cacheSize: new Gauge({
      name: 'nats_callout_serviceaccount_cache_size',
      help: 'ServiceAccounts in the watch-fed cache',
      registers: [registry],
    }),
    cacheSynced: new Gauge({
      name: 'nats_callout_serviceaccount_cache_synced',
      help: '1 once the ServiceAccount cache completed its first list',
      registers: [registry],
    }),
    kubeApiHealthy: new Gauge({
      name: 'nats_callout_kube_api_healthy',
      help: '1 while the ServiceAccount watch is connected; 0 while serving the last synced cache',
      registers: [registry],
    }),
    watchRestarts: new Counter({
      name: 'nats_callout_watch_restarts_total',
      help: 'ServiceAccount watch restarts after an error',
      registers: [registry],
    }),
    natsConnected: new Gauge({
      name: 'nats_callout_nats_connected',
      help: '1 while connected to NATS',
      registers: [registry],
    }),
    jwksKeys: new Gauge({
      name: 'nats_callout_jwks_keys',
      help: 'Token verification keys held (kept through failed refreshes)',
      registers: [registry],
    }),
    jwksReady: new Gauge({
      name: 'nats_callout_jwks_ready',
      help: '1 while the token keys are loaded and not stale (JWKS_MAX_STALE)',
      registers: [registry],
    }),
  };
}
