import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { KubeConfig } from '@kubernetes/client-node';
import { createTokenReviewVerifier, KubeAuthError, KubeUnavailableError } from '@precinct/kube';

type Answer = 'authenticated' | 'unauthenticated' | 'not-a-serviceaccount' | 'error';

/** A TokenReview endpoint whose answer the test chooses; records the specs it received. */
async function tokenReviewServer() {
  let answer: Answer = 'authenticated';
  const specs: Array<Record<string, unknown>> = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const review = JSON.parse(body);
      specs.push(review.spec);
      if (answer === 'error') {
        res.writeHead(500, { 'content-type': 'application/json' }).end('{}');
        return;
      }
      const user =
        answer === 'not-a-serviceaccount'
          ? { username: 'alice', groups: ['system:authenticated'] }
          : {
              username: 'system:serviceaccount:team-a:builder',
              uid: 'sa-uid',
              groups: ['system:serviceaccounts', 'system:serviceaccounts:team-a'],
              extra: {
                'authentication.kubernetes.io/pod-name': ['builder-0'],
                'authentication.kubernetes.io/pod-uid': ['pod-uid'],
              },
            };
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          ...review,
          status:
            answer === 'unauthenticated'
              ? { authenticated: false, error: 'invalid bearer token' }
              : { authenticated: true, user, audiences: review.spec.audiences },
        }),
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address();
  const port = typeof a === 'object' && a ? a.port : 0;
  return {
    kc: kubeConfigFor(`http://127.0.0.1:${port}`),
    specs,
    set answer(v: Answer) {
      answer = v;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

function kubeConfigFor(server: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server, skipTLSVerify: true }],
    users: [{ name: 'u', token: 'x' }],
    contexts: [{ name: 'ctx', cluster: 'c', user: 'u' }],
    currentContext: 'ctx',
  });
  return kc;
}

test('TokenReview: authenticated maps the user, a refusal is ERR_TOKEN_REJECTED, 5xx and network errors are unavailable', async (t) => {
  const api = await tokenReviewServer();
  t.after(() => api.close());
  const v = createTokenReviewVerifier({ kubeConfig: api.kc, audiences: ['precinct'] });

  // Positive control.
  const id = await v.verify('a.b.c');
  assert.equal(id.username, 'system:serviceaccount:team-a:builder');
  assert.equal(id.namespace, 'team-a');
  assert.equal(id.serviceAccountName, 'builder');
  assert.equal(id.uid, 'sa-uid');
  assert.deepEqual(id.pod, { name: 'builder-0', uid: 'pod-uid' });
  assert.deepEqual(id.audiences, ['precinct']);
  assert.equal(id.source, 'tokenreview');
  assert.deepEqual(api.specs[0], { token: 'a.b.c', audiences: ['precinct'] });

  const cases: Array<[Answer, string, typeof KubeAuthError | typeof KubeUnavailableError]> = [
    ['unauthenticated', 'ERR_TOKEN_REJECTED', KubeAuthError],
    ['not-a-serviceaccount', 'ERR_TOKEN_CLAIMS', KubeAuthError],
    ['error', 'ERR_KUBE_UNAVAILABLE', KubeUnavailableError],
  ];
  for (const [answer, code, cls] of cases) {
    api.answer = answer;
    await assert.rejects(v.verify('a.b.c'), (err: unknown) => {
      assert.ok(err instanceof cls, `${answer}: ${String(err)}`);
      assert.equal(err.code, code, answer);
      return true;
    });
  }

  // Bad input is refused before any request.
  const before = api.specs.length;
  await assert.rejects(v.verify(''), { code: 'ERR_TOKEN_MISSING' });
  await assert.rejects(v.verify('x'.repeat(17 * 1024)), { code: 'ERR_TOKEN_TOO_LARGE' });
  assert.equal(api.specs.length, before);

  // Nobody listening: unavailable, not a bad token.
  await api.close();
  await assert.rejects(v.verify('a.b.c'), { code: 'ERR_KUBE_UNAVAILABLE' });
});
