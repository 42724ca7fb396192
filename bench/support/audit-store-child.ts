// The audit store as the ingest benchmark runs it: its own process (so the parent can read its
// memory from /proc and the bench client's buffers are not counted), real PostgreSQL from
// DATABASE_URL, and the @precinct/kube auth plugin with an in-process allow-all verifier and
// authorizer standing in for cached TokenReview / SubjectAccessReview answers.
import type { Authorizer, TokenVerifier } from '@precinct/kube';
import { createLogger } from '@precinct/runtime';
import { startAuditStore } from '@precinct/audit-store';

const verifier: TokenVerifier = {
  async verify() {
    return {
      username: 'system:serviceaccount:bench:writer',
      groups: ['system:serviceaccounts'],
      namespace: 'bench',
      serviceAccountName: 'writer',
      audiences: ['data-storage-service'],
      extra: {},
      source: 'jwks',
    };
  },
};
const authorizer: Authorizer = { authorize: async () => ({ allowed: true, cached: true }) };

const store = await startAuditStore({
  databaseUrl: process.env.DATABASE_URL,
  host: '127.0.0.1',
  port: 0,
  auth: { verifier, authorizer },
  authz: { namespace: 'bench' },
  retentionIntervalMs: 0,
  logger: createLogger('audit-store', process.env.LOG_LEVEL ?? 'warn'),
});
process.stdout.write(`READY ${store.port}\n`);
process.once('SIGTERM', () => {
  void store.close().then(() => process.exit(0));
});
