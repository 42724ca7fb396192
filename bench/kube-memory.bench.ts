// npm run bench -- kube-memory
// RSS of a process holding 100,000 verified tokens and 100,000 SubjectAccessReview decisions.
// The decisions are answered in process (`review`), so the figure is the caches' own, not an
// HTTP client's.
import {
  cachingVerifier,
  createSubjectAccessReviewAuthorizer,
  type ServiceAccountIdentity,
} from '@precinct/kube';
import { printTable } from './table.js';

const N = 100_000;
global.gc?.();
const before = process.memoryUsage().rss / 1024 / 1024;
let n = 0;
const tokens = cachingVerifier(
  {
    async verify(): Promise<ServiceAccountIdentity> {
      n++;
      const ns = `ns-${n % 100}`;
      return {
        username: `system:serviceaccount:${ns}:sa-${n}`,
        uid: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
        groups: ['system:serviceaccounts', `system:serviceaccounts:${ns}`, 'system:authenticated'],
        namespace: ns,
        serviceAccountName: `sa-${n}`,
        pod: { name: `pod-${n}`, uid: `11111111-0000-4000-8000-${String(n).padStart(12, '0')}` },
        audiences: ['precinct'],
        expiresAt: new Date(Date.now() + 3600_000),
        extra: { 'authentication.kubernetes.io/pod-name': [`pod-${n}`] },
        source: 'jwks',
      };
    },
  },
  { maxEntries: N },
);
// Token-sized keys (the cache stores only their SHA-256).
const prefix = 'eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.' + 'x'.repeat(900) + '.';
for (let i = 0; i < N; i++) await tokens.verify(prefix + i);
const authz = createSubjectAccessReviewAuthorizer({
  maxEntries: N,
  review: async (spec) => ({ allowed: spec.user!.length % 2 === 0 }),
});
for (let i = 0; i < N; i++) {
  await authz.authorize(
    { username: `system:serviceaccount:ns-${i % 100}:sa-${i}`, groups: ['system:authenticated'] },
    { verb: 'get', resource: 'services', namespace: 'default', name: 'data-storage-service' },
  );
}
global.gc?.();
const rss = process.memoryUsage().rss / 1024 / 1024;
printTable('@precinct/kube memory', [
  {
    metric: `RSS with ${tokens.size.toLocaleString()} tokens + ${authz.size.toLocaleString()} decisions cached`,
    ours: rss,
    reference: before,
    unit: 'MB',
    target: '< 150 MB (reference: same process before filling)',
    met: rss < 150,
  },
]);
