// One table of scenarios, run against kube-dev and against a real kube-apiserver (+ etcd and
// kube-controller-manager), with unmodified kubectl and raw HTTPS as @kubernetes/client-node
// sends it. Each scenario reduces a server's answer to an outcome (what a client acts on:
// status code, allowed, authenticated, exit code) and a wording (messages). Outcomes must be
// equal unless the scenario is a documented decision in docs/kube-dev.md ("Differences from
// kube-apiserver"); wording differences are only counted. The summary is printed.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeJwt, decodeProtectedHeader, SignJWT } from 'jose';
import {
  peerSkip,
  requirePeer,
  startKubeApiserver,
  tempDir,
  type KubeApiserver,
} from '@precinct/testing';
import { startKubeDev, type KubeDev } from '@precinct/kube-dev';
import {
  ApiException,
  AuthenticationV1Api,
  AuthorizationV1Api,
  CoreV1Api,
  KubeConfig,
  Watch,
  type V1SubjectAccessReviewSpec,
  type V1TokenRequestSpec,
} from '@kubernetes/client-node';
import { call, watch, type Side } from './side.js';

/** Scenarios whose outcome differs on purpose; each is explained in docs/kube-dev.md. */
const DOCUMENTED: Record<string, string> = {
  'watch from a resourceVersion far in the past':
    'kube-dev keeps watch history since its start only (410 Expired, clients relist); etcd keeps it until compaction',
  'POST a ServiceAccount with a duplicate key, fieldValidation=(none)':
    'outside Strict, kube-dev keeps the last of duplicate keys whole (JSON.parse); Go merges duplicate objects and maps',
  'TokenReview: the sub claim changed to another ServiceAccount':
    'kube-dev refuses a token whose sub disagrees with its kubernetes.io claims; kube-apiserver goes by the kubernetes.io claims (only the signing key can make such a token)',
  'kubectl auth can-i update deployments.apps --subresource=scale as a deployer':
    'kube-dev serves no deployments, so kubectl cannot resolve deployments.apps from discovery and asks about resource "deployments.apps" in the core group',
};

interface Result {
  outcome: string;
  wording?: string;
}
/**
 * `expect`: a substring the real server's outcome must contain, so setup steps and positive
 * controls cannot fail the same way on both sides and pass as "identical".
 */
type Scenario = { name: string; run: (s: Side) => Promise<Result>; expect?: string };

const skip = peerSkip('kube-apiserver', 'etcd', 'kube-controller-manager', 'kubectl');
const NS = 'diff';
const G = 'rbac.authorization.k8s.io';

/** Polls `fn` until `done` holds or `boundMs` passed; returns the last value. */
async function until<T>(fn: () => Promise<T>, done: (v: T) => boolean, boundMs = 15_000) {
  const deadline = Date.now() + boundMs;
  for (;;) {
    const v = await fn();
    if (done(v) || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 250));
  }
}

const json = (v: unknown) => JSON.stringify(v);
const statusOf = (r: { status: number; text: string }): Result => {
  let msg = r.text;
  try {
    const b = JSON.parse(r.text) as { message?: string; reason?: string };
    msg = `${b.reason ?? ''} ${b.message ?? ''}`;
  } catch {
    /* not JSON */
  }
  return { outcome: String(r.status), wording: msg.slice(0, 300) };
};

function kubectl(s: Side, args: string[], stdin?: string) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const p = spawn(requirePeer('kubectl'), ['--kubeconfig', s.kubeconfigPath, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    p.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), 30_000);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    p.stdin.end(stdin ?? '');
  });
}
const kubectlResult = (
  r: { code: number; stdout: string; stderr: string },
  out = false,
): Result => ({
  outcome: `exit ${r.code}${out ? ` ${r.stdout.trim()}` : ''}`,
  wording: `${r.stdout}${r.stderr}`.replace(/\s+/g, ' ').slice(0, 300),
});

// TokenRequest, TokenReview and SubjectAccessReview go through @kubernetes/client-node, as a
// service using this repo's libraries would send them; the rest is raw HTTPS or kubectl.
const clients = new Map<
  Side,
  { core: CoreV1Api; authn: AuthenticationV1Api; authz: AuthorizationV1Api }
>();
function client(s: Side) {
  let c = clients.get(s);
  if (!c) {
    const kc = new KubeConfig();
    kc.loadFromFile(s.kubeconfigPath);
    c = {
      core: kc.makeApiClient(CoreV1Api),
      authn: kc.makeApiClient(AuthenticationV1Api),
      authz: kc.makeApiClient(AuthorizationV1Api),
    };
    clients.set(s, c);
  }
  return c;
}

async function mint(s: Side, sa: string, spec: Record<string, unknown> = {}) {
  const r = await client(s).core.createNamespacedServiceAccountToken({
    name: sa,
    namespace: NS,
    body: { spec: spec as unknown as V1TokenRequestSpec },
  });
  return r.status!.token;
}

async function review(s: Side, token: string, audiences?: string[]) {
  try {
    const r = await client(s).authn.createTokenReview({
      body: { spec: { token, ...(audiences ? { audiences } : {}) } },
    });
    return { code: 201, ...r.status };
  } catch (err) {
    if (err instanceof ApiException)
      return { code: err.code as number, error: String(err.body).slice(0, 200) };
    throw err;
  }
}
const reviewResult = (v: Awaited<ReturnType<typeof review>>, s: Side): Result => ({
  outcome: `${v.code} authenticated=${v.authenticated === true}${v.authenticated ? ` user=${v.user?.username === s.adminUser ? 'ADMIN' : v.user?.username} aud=${(v.audiences ?? []).map((a) => (a === s.issuer ? 'ISSUER' : a)).join(',')}` : ''}`,
  wording: v.error ?? '',
});

/** Re-signs a minted token's claims, changed by `edit`, with the side's own signing key. */
async function forge(s: Side, model: string, edit: (c: Record<string, unknown>) => void) {
  const claims = decodeJwt(model) as Record<string, unknown>;
  edit(claims);
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256', kid: decodeProtectedHeader(model).kid! })
    .sign(createPrivateKey(s.signingKeyPem));
}

async function sar(s: Side, spec: Record<string, unknown>) {
  try {
    const r = await client(s).authz.createSubjectAccessReview({
      body: { spec: spec as unknown as V1SubjectAccessReviewSpec },
    });
    return {
      outcome: `201 allowed=${r.status?.allowed === true}`,
      wording: r.status?.reason ?? '',
    };
  } catch (err) {
    if (err instanceof ApiException)
      return { outcome: String(err.code), wording: String(err.body).slice(0, 200) };
    throw err;
  }
}
const ra = (
  user: string,
  verb: string,
  resource: string,
  extra: Record<string, string> = {},
  groups?: string[],
) => ({
  user,
  ...(groups ? { groups } : {}),
  resourceAttributes: { namespace: NS, verb, resource, group: '', ...extra },
});

const yaml = (o: unknown) => JSON.stringify(o);

// ---------------------------------------------------------------------------------------------
// The table. Scenarios run in order on each side; earlier ones may set up later ones.
// ---------------------------------------------------------------------------------------------
const scenarios: Scenario[] = [];
const add = (name: string, run: Scenario['run'], expect?: string) =>
  scenarios.push({ name, run, ...(expect !== undefined ? { expect } : {}) });

// TokenRequest
add('TokenRequest: default audience is the API audience, 1 h', async (s) => {
  const c = decodeJwt(await mint(s, 'app'));
  return {
    outcome: `aud=${json(c.aud) === json([s.issuer]) ? 'ISSUER' : json(c.aud)} ttl=${c.exp! - c.iat!}`,
  };
});
add('TokenRequest: explicit audiences', async (s) => {
  const c = decodeJwt(await mint(s, 'app', { audiences: ['a', 'b'] }));
  return { outcome: `aud=${json(c.aud)}` };
});
for (const [label, e] of [
  ['599 s', 599],
  ['600 s', 600],
  ['2^32 s', 2 ** 32],
  ['2^32+1 s', 2 ** 32 + 1],
  ['a string', '"600"'],
] as const) {
  add(`TokenRequest: expirationSeconds ${label}`, async (s) => {
    const r = await call(s, 'POST', `/api/v1/namespaces/${NS}/serviceaccounts/app/token`, {
      body: `{"spec":{"expirationSeconds":${e}}}`,
    });
    const res = statusOf(r);
    if (r.status === 201) {
      const c = decodeJwt((r.json() as { status: { token: string } }).status.token);
      res.outcome += ` ttl=${c.exp! - c.iat!}`;
    }
    return res;
  });
}
add('TokenRequest: unknown ServiceAccount', async (s) =>
  statusOf(
    await call(s, 'POST', `/api/v1/namespaces/${NS}/serviceaccounts/nobody/token`, { body: '{}' }),
  ),
);
for (const kind of ['Pod', 'Secret', 'ConfigMap']) {
  add(`TokenRequest: bound to a ${kind} that does not exist`, async (s) =>
    statusOf(
      await call(s, 'POST', `/api/v1/namespaces/${NS}/serviceaccounts/app/token`, {
        body: json({ spec: { boundObjectRef: { kind, apiVersion: 'v1', name: 'ghost' } } }),
      }),
    ),
  );
}

// TokenReview
add('TokenReview: valid token, default audience', async (s) =>
  reviewResult(await review(s, await mint(s, 'app')), s),
);
add('TokenReview: audiences intersect', async (s) =>
  reviewResult(await review(s, await mint(s, 'app', { audiences: ['a', 'b'] }), ['b', 'c']), s),
);
add('TokenReview: wrong audience', async (s) =>
  reviewResult(await review(s, await mint(s, 'app', { audiences: ['a'] }), ['precinct']), s),
);
add('TokenReview: API-audience token reviewed for another audience', async (s) =>
  reviewResult(await review(s, await mint(s, 'app'), ['precinct']), s),
);
add('TokenReview: admin credential, default audience', async (s) =>
  reviewResult(await review(s, s.adminToken), s),
);
add('TokenReview: admin credential for a service audience', async (s) =>
  reviewResult(await review(s, s.adminToken, ['precinct']), s),
);
add('TokenReview: garbage', async (s) => reviewResult(await review(s, 'not-a-token'), s));
add('TokenReview: missing spec.token', async (s) =>
  statusOf(
    await call(s, 'POST', '/apis/authentication.k8s.io/v1/tokenreviews', { body: '{"spec":{}}' }),
  ),
);
add('TokenReview: forged copy with the right key (control)', async (s) => {
  const model = await mint(s, 'app', { audiences: ['precinct'] });
  return reviewResult(await review(s, await forge(s, model, () => {}), ['precinct']), s);
});
add('TokenReview: expired', async (s) => {
  const model = await mint(s, 'app', { audiences: ['precinct'] });
  const now = Math.floor(Date.now() / 1000);
  const t = await forge(s, model, (c) =>
    Object.assign(c, { iat: now - 7200, nbf: now - 7200, exp: now - 3600 }),
  );
  return reviewResult(await review(s, t, ['precinct']), s);
});
add('TokenReview: iat one hour in the future', async (s) => {
  const model = await mint(s, 'app', { audiences: ['precinct'] });
  const now = Math.floor(Date.now() / 1000);
  const t = await forge(s, model, (c) =>
    Object.assign(c, { iat: now + 3600, nbf: now - 10, exp: now + 7200 }),
  );
  return reviewResult(await review(s, t, ['precinct']), s);
});
add('TokenReview: signature with == padding', async (s) =>
  reviewResult(
    await review(s, `${await mint(s, 'app', { audiences: ['precinct'] })}==`, ['precinct']),
    s,
  ),
);
add('TokenReview: non-canonical base64 in the last signature character', async (s) => {
  const t = await mint(s, 'app', { audiences: ['precinct'] });
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  // 256-byte signature: the last of 342 characters carries 2 data bits and 4 zero bits.
  const last = alphabet.indexOf(t.at(-1)!);
  const bent = t.slice(0, -1) + alphabet[last | 1];
  return reviewResult(await review(s, bent, ['precinct']), s);
});
add('TokenReview: ServiceAccount deleted', async (s) => {
  await call(s, 'POST', `/api/v1/namespaces/${NS}/serviceaccounts`, {
    body: json({ metadata: { name: 'doomed' } }),
  });
  const t = await mint(s, 'doomed', { audiences: ['precinct'] });
  const before = await review(s, t, ['precinct']);
  await call(s, 'DELETE', `/api/v1/namespaces/${NS}/serviceaccounts/doomed`);
  // kube-apiserver caches token authentication for up to ~10 s.
  const v = await until(
    () => review(s, t, ['precinct']),
    (x) => x.authenticated !== true,
  );
  return {
    outcome: `before=${before.authenticated === true} after=${v.authenticated === true}`,
    wording: v.error ?? '',
  };
});
add('TokenReview: ServiceAccount deleted and re-created', async (s) => {
  await call(s, 'POST', `/api/v1/namespaces/${NS}/serviceaccounts`, {
    body: json({ metadata: { name: 'phoenix' } }),
  });
  const t = await mint(s, 'phoenix', { audiences: ['precinct'] });
  await call(s, 'DELETE', `/api/v1/namespaces/${NS}/serviceaccounts/phoenix`);
  await call(s, 'POST', `/api/v1/namespaces/${NS}/serviceaccounts`, {
    body: json({ metadata: { name: 'phoenix' } }),
  });
  const v = await until(
    () => review(s, t, ['precinct']),
    (x) => x.authenticated !== true,
  );
  const fresh = await review(s, await mint(s, 'phoenix', { audiences: ['precinct'] }), [
    'precinct',
  ]);
  return {
    outcome: `old=${v.authenticated === true} new=${fresh.authenticated === true}`,
    wording: v.error ?? '',
  };
});

// Bound objects that exist
for (const kind of ['Pod', 'Secret'] as const) {
  add(`TokenRequest/TokenReview: bound to a ${kind}, then the ${kind} is deleted`, async (s) => {
    const path = kind === 'Pod' ? 'pods' : 'secrets';
    const body =
      kind === 'Pod'
        ? {
            metadata: { name: 'holder' },
            spec: { serviceAccountName: 'app', containers: [{ name: 'c', image: 'busybox' }] },
          }
        : { metadata: { name: 'holder' }, stringData: { k: 'v' } };
    const created = await call(s, 'POST', `/api/v1/namespaces/${NS}/${path}`, { body: json(body) });
    if (created.status !== 201) return statusOf(created);
    const uid = (created.json() as { metadata: { uid: string } }).metadata.uid;
    const wrong = await call(s, 'POST', `/api/v1/namespaces/${NS}/serviceaccounts/app/token`, {
      body: json({
        spec: {
          audiences: ['precinct'],
          boundObjectRef: { kind, apiVersion: 'v1', name: 'holder', uid: 'not-the-uid' },
        },
      }),
    });
    const t = await mint(s, 'app', {
      audiences: ['precinct'],
      boundObjectRef: { kind, apiVersion: 'v1', name: 'holder', uid },
    });
    const c = decodeJwt(t) as {
      'kubernetes.io': Record<string, { name: string; uid: string } | undefined>;
    };
    const claim = c['kubernetes.io'][kind.toLowerCase()];
    const live = await review(s, t, ['precinct']);
    const extraKeys = Object.keys(live.user?.extra ?? {})
      .filter((k) => !k.endsWith('credential-id'))
      .sort();
    await call(s, 'DELETE', `/api/v1/namespaces/${NS}/${path}/holder`, {
      body: json({ gracePeriodSeconds: 0 }),
    });
    const gone = await until(
      () => review(s, t, ['precinct']),
      (x) => x.authenticated !== true,
    );
    return {
      outcome: `uidMismatch=${wrong.status} claim=${claim?.name === 'holder' && claim.uid === uid} live=${live.authenticated === true} extra=${extraKeys.join(',')} afterDelete=${gone.authenticated === true}`,
      wording: `${statusOf(wrong).wording} | ${gone.error ?? ''}`,
    };
  });
}

// OIDC discovery and JWKS
for (const p of ['/.well-known/openid-configuration', '/openid/v1/jwks']) {
  add(`OIDC ${p} anonymously`, async (s) => statusOf(await call(s, 'GET', p, { token: null })));
  add(`OIDC ${p} with a ServiceAccount token`, async (s) => {
    const r = await call(s, 'GET', p, {
      token: await mint(s, 'app'),
      accept: p.includes('jwks') ? 'application/jwk-set+json' : 'application/json',
    });
    const b = r.json() as {
      issuer?: string;
      jwks_uri?: string;
      keys?: Array<{ kid: string; alg: string; use: string; kty: string }>;
    };
    const kid = decodeProtectedHeader(await mint(s, 'app')).kid;
    return {
      outcome: p.includes('jwks')
        ? `${r.status} ${json(b.keys?.map((k) => ({ self: k.kid === kid, alg: k.alg, use: k.use, kty: k.kty })))}`
        : `${r.status} issuer=${b.issuer === s.issuer} jwks=${b.jwks_uri === `${s.issuer}/openid/v1/jwks`}`,
    };
  });
}
add('OIDC JWKS asked for as application/json', async (s) =>
  statusOf(
    await call(s, 'GET', '/openid/v1/jwks', {
      token: await mint(s, 'app'),
      accept: 'application/json',
    }),
  ),
);
add('health and /version anonymously', async (s) => {
  const codes = [];
  for (const p of ['/healthz', '/livez', '/readyz', '/version'])
    codes.push((await call(s, 'GET', p, { token: null })).status);
  return { outcome: codes.join(',') };
});
add('the API anonymously', async (s) =>
  statusOf(await call(s, 'GET', '/api/v1/namespaces', { token: null })),
);
add('the API with a bad token', async (s) =>
  statusOf(await call(s, 'GET', '/api/v1/namespaces', { token: 'nope' })),
);

// RBAC objects for the SubjectAccessReview table, written with kubectl apply.
const rbacObjects = [
  {
    apiVersion: `${G}/v1`,
    kind: 'Role',
    metadata: { name: 'named', namespace: NS },
    rules: [{ apiGroups: [''], resources: ['configmaps'], resourceNames: ['one'], verbs: ['get'] }],
  },
  {
    apiVersion: `${G}/v1`,
    kind: 'Role',
    metadata: { name: 'apps', namespace: NS },
    rules: [
      {
        apiGroups: ['apps'],
        resources: ['deployments', 'deployments/scale'],
        verbs: ['get', 'update'],
      },
    ],
  },
  {
    apiVersion: `${G}/v1`,
    kind: 'ClusterRole',
    metadata: { name: 'diff-agg' },
    aggregationRule: { clusterRoleSelectors: [{ matchLabels: { 'diff/agg': 'true' } }] },
  },
  {
    apiVersion: `${G}/v1`,
    kind: 'ClusterRole',
    metadata: { name: 'diff-agg-part', labels: { 'diff/agg': 'true' } },
    rules: [{ apiGroups: ['example.com'], resources: ['widgets'], verbs: ['list'] }],
  },
  {
    apiVersion: `${G}/v1`,
    kind: 'ClusterRole',
    metadata: { name: 'diff-urls' },
    rules: [{ nonResourceURLs: ['/metrics', '/logs/*'], verbs: ['get'] }],
  },
  {
    apiVersion: `${G}/v1`,
    kind: 'RoleBinding',
    metadata: { name: 'named', namespace: NS },
    roleRef: { apiGroup: G, kind: 'Role', name: 'named' },
    subjects: [{ kind: 'User', apiGroup: G, name: 'nina' }],
  },
  {
    apiVersion: `${G}/v1`,
    kind: 'RoleBinding',
    metadata: { name: 'apps', namespace: NS },
    roleRef: { apiGroup: G, kind: 'Role', name: 'apps' },
    subjects: [{ kind: 'Group', apiGroup: G, name: 'deployers' }],
  },
  {
    apiVersion: `${G}/v1`,
    kind: 'ClusterRoleBinding',
    metadata: { name: 'diff-agg' },
    roleRef: { apiGroup: G, kind: 'ClusterRole', name: 'diff-agg' },
    subjects: [{ kind: 'ServiceAccount', name: 'app', namespace: NS }],
  },
  {
    apiVersion: `${G}/v1`,
    kind: 'ClusterRoleBinding',
    metadata: { name: 'diff-urls' },
    roleRef: { apiGroup: G, kind: 'ClusterRole', name: 'diff-urls' },
    subjects: [{ kind: 'User', apiGroup: G, name: 'ursula' }],
  },
  {
    apiVersion: `${G}/v1`,
    kind: 'RoleBinding',
    metadata: { name: 'viewer', namespace: NS },
    roleRef: { apiGroup: G, kind: 'ClusterRole', name: 'view' },
    subjects: [{ kind: 'User', apiGroup: G, name: 'vera' }],
  },
];
add(
  'kubectl apply -f the RBAC objects',
  async (s) =>
    kubectlResult(await kubectl(s, ['apply', '-f', '-'], rbacObjects.map(yaml).join('\n'))),
  'exit 0',
);
add(
  'kubectl apply -f the same RBAC objects again',
  async (s) =>
    kubectlResult(await kubectl(s, ['apply', '-f', '-'], rbacObjects.map(yaml).join('\n'))),
  'exit 0',
);
const sarTable: Array<[string, Record<string, unknown>]> = [
  ['resourceNames: the named object', ra('nina', 'get', 'configmaps', { name: 'one' })],
  ['resourceNames: another object', ra('nina', 'get', 'configmaps', { name: 'two' })],
  ['resourceNames: list (no name)', ra('nina', 'list', 'configmaps')],
  [
    'group binding: deployments in apps',
    ra('x', 'get', 'deployments', { group: 'apps' }, ['deployers']),
  ],
  ['group binding: deployments in core', ra('x', 'get', 'deployments', {}, ['deployers'])],
  [
    'subresource: deployments/scale',
    ra('x', 'update', 'deployments', { group: 'apps', subresource: 'scale' }, ['deployers']),
  ],
  [
    'subresource: deployments/status',
    ra('x', 'update', 'deployments', { group: 'apps', subresource: 'status' }, ['deployers']),
  ],
  [
    'other namespace',
    {
      user: 'nina',
      resourceAttributes: {
        namespace: 'default',
        verb: 'get',
        resource: 'configmaps',
        name: 'one',
      },
    },
  ],
  [
    'aggregated ClusterRole via ServiceAccount',
    {
      user: `system:serviceaccount:${NS}:app`,
      groups: ['system:serviceaccounts'],
      resourceAttributes: {
        namespace: NS,
        verb: 'list',
        group: 'example.com',
        resource: 'widgets',
      },
    },
  ],
  ['built-in view: list serviceaccounts', ra('vera', 'list', 'serviceaccounts')],
  ['built-in view: get secrets', ra('vera', 'get', 'secrets')],
  [
    'non-resource URL exact',
    { user: 'ursula', nonResourceAttributes: { path: '/metrics', verb: 'get' } },
  ],
  [
    'non-resource URL prefix',
    { user: 'ursula', nonResourceAttributes: { path: '/logs/kube.log', verb: 'get' } },
  ],
  [
    'non-resource URL other verb',
    { user: 'ursula', nonResourceAttributes: { path: '/metrics', verb: 'post' } },
  ],
  [
    'non-resource URL discovery for authenticated',
    {
      user: 'x',
      groups: ['system:authenticated'],
      nonResourceAttributes: { path: '/apis', verb: 'get' },
    },
  ],
  [
    'system:masters',
    {
      user: 'root',
      groups: ['system:masters'],
      resourceAttributes: { verb: 'delete', resource: 'nodes', group: '' },
    },
  ],
];
// What a real cluster answers, so a table that silently failed to set up cannot pass.
const allowedIn = new Set([
  'resourceNames: the named object',
  'group binding: deployments in apps',
  'subresource: deployments/scale',
  'aggregated ClusterRole via ServiceAccount',
  'built-in view: list serviceaccounts',
  'non-resource URL exact',
  'non-resource URL prefix',
  'non-resource URL discovery for authenticated',
  'system:masters',
]);
for (const [label, spec] of sarTable) {
  add(
    `SubjectAccessReview: ${label}`,
    async (s) =>
      // The aggregation controller fills diff-agg some time after the apply.
      label.startsWith('aggregated')
        ? until(
            () => sar(s, spec),
            (r) => r.outcome.includes('allowed=true'),
            10_000,
          )
        : sar(s, spec),
    `allowed=${allowedIn.has(label)}`,
  );
}
add('SubjectAccessReview: neither user nor group', async (s) =>
  statusOf(
    await call(s, 'POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', {
      body: json({ spec: { resourceAttributes: { verb: 'get', resource: 'pods' } } }),
    }),
  ),
);
for (const [label, args] of [
  ['get configmaps/one as nina', ['get', 'configmaps/one', '-n', NS, '--as', 'nina']],
  ['get configmaps/two as nina', ['get', 'configmaps/two', '-n', NS, '--as', 'nina']],
  [
    'update deployments.apps --subresource=scale as a deployer',
    [
      'update',
      'deployments.apps',
      '--subresource=scale',
      '-n',
      NS,
      '--as',
      'x',
      '--as-group',
      'deployers',
    ],
  ],
  ['get /metrics as ursula', ['get', '/metrics', '--as', 'ursula']],
  [
    'list serviceaccounts as the ServiceAccount',
    ['list', 'serviceaccounts', '-n', NS, '--as', `system:serviceaccount:${NS}:app`],
  ],
] as const) {
  add(`kubectl auth can-i ${label}`, async (s) =>
    kubectlResult(await kubectl(s, ['auth', 'can-i', ...args]), true),
  );
}

// Escalation and bind checks, as a ServiceAccount that may only write RBAC objects.
add(
  'escalation: set up a ServiceAccount that may write Roles and RoleBindings',
  async (s) => {
    const objs = [
      {
        apiVersion: 'v1',
        kind: 'ServiceAccount',
        metadata: { name: 'rbac-writer', namespace: NS },
      },
      {
        apiVersion: `${G}/v1`,
        kind: 'Role',
        metadata: { name: 'rbac-writer', namespace: NS },
        rules: [
          { apiGroups: [G], resources: ['roles', 'rolebindings'], verbs: ['create', 'get'] },
          { apiGroups: [''], resources: ['configmaps'], verbs: ['get'] },
        ],
      },
      {
        apiVersion: `${G}/v1`,
        kind: 'RoleBinding',
        metadata: { name: 'rbac-writer', namespace: NS },
        roleRef: { apiGroup: G, kind: 'Role', name: 'rbac-writer' },
        subjects: [{ kind: 'ServiceAccount', name: 'rbac-writer', namespace: NS }],
      },
      {
        apiVersion: `${G}/v1`,
        kind: 'Role',
        metadata: { name: 'secrets-admin', namespace: NS },
        rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['*'] }],
      },
    ];
    return kubectlResult(await kubectl(s, ['apply', '-f', '-'], objs.map(yaml).join('\n')));
  },
  'exit 0',
);
const asWriter = async (s: Side, path: string, body: unknown) =>
  statusOf(await call(s, 'POST', path, { token: await mint(s, 'rbac-writer'), body: json(body) }));
add('escalation: a Role with only held permissions', async (s) =>
  asWriter(s, `/apis/${G}/v1/namespaces/${NS}/roles`, {
    metadata: { name: 'held' },
    rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get'] }],
  }),
);
add('escalation: a Role with more than held', async (s) =>
  asWriter(s, `/apis/${G}/v1/namespaces/${NS}/roles`, {
    metadata: { name: 'more' },
    rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }],
  }),
);
add('bind: a RoleBinding to a held Role', async (s) =>
  asWriter(s, `/apis/${G}/v1/namespaces/${NS}/rolebindings`, {
    metadata: { name: 'held' },
    roleRef: { apiGroup: G, kind: 'Role', name: 'held' },
    subjects: [{ kind: 'User', apiGroup: G, name: 'h' }],
  }),
);
add('bind: a RoleBinding to a Role with more than held', async (s) =>
  asWriter(s, `/apis/${G}/v1/namespaces/${NS}/rolebindings`, {
    metadata: { name: 'sa' },
    roleRef: { apiGroup: G, kind: 'Role', name: 'secrets-admin' },
    subjects: [{ kind: 'User', apiGroup: G, name: 'h' }],
  }),
);
add('bind: after being granted verb bind on that Role', async (s) => {
  const grant = [
    {
      apiVersion: `${G}/v1`,
      kind: 'Role',
      metadata: { name: 'binder', namespace: NS },
      rules: [
        {
          apiGroups: [G],
          resources: ['roles'],
          verbs: ['bind', 'escalate'],
          resourceNames: ['secrets-admin', 'more2'],
        },
      ],
    },
    {
      apiVersion: `${G}/v1`,
      kind: 'RoleBinding',
      metadata: { name: 'binder', namespace: NS },
      roleRef: { apiGroup: G, kind: 'Role', name: 'binder' },
      subjects: [{ kind: 'ServiceAccount', name: 'rbac-writer', namespace: NS }],
    },
  ];
  await kubectl(s, ['apply', '-f', '-'], grant.map(yaml).join('\n'));
  return asWriter(s, `/apis/${G}/v1/namespaces/${NS}/rolebindings`, {
    metadata: { name: 'sa2' },
    roleRef: { apiGroup: G, kind: 'Role', name: 'secrets-admin' },
    subjects: [{ kind: 'User', apiGroup: G, name: 'h' }],
  });
});
add('escalate: a Role with more than held, with verb escalate on it', async (s) =>
  asWriter(s, `/apis/${G}/v1/namespaces/${NS}/roles`, {
    metadata: { name: 'more2' },
    rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }],
  }),
);

// Field validation
const typo = {
  apiVersion: `${G}/v1`,
  kind: 'Role',
  metadata: { name: 'typo', namespace: NS },
  rules: [
    { apiGroups: [''], resources: ['configmaps'], resourceName: ['only-this'], verbs: ['get'] },
  ],
};
add('kubectl apply -f a Role with the typo resourceName (default validation)', async (s) =>
  kubectlResult(await kubectl(s, ['apply', '-f', '-'], yaml(typo))),
);
add('kubectl create -f a Role with the typo, --validate=false', async (s) => {
  const r = await kubectl(
    s,
    ['create', '--validate=false', '-f', '-'],
    yaml({ ...typo, metadata: { ...typo.metadata, name: 'typo2' } }),
  );
  const stored = await call(s, 'GET', `/apis/${G}/v1/namespaces/${NS}/roles/typo2`);
  const rule = (stored.json() as { rules?: Array<Record<string, unknown>> }).rules?.[0] ?? {};
  return {
    outcome: `exit ${r.code} stored=${Object.keys(rule).sort().join(',')}`,
    wording: kubectlResult(r).wording,
  };
});
for (const fv of ['Strict', 'Warn', 'Ignore', '', 'Bogus']) {
  add(`POST a Role with an unknown field, fieldValidation=${fv || '(none)'}`, async (s) => {
    const r = await call(
      s,
      'POST',
      `/apis/${G}/v1/namespaces/${NS}/roles${fv ? `?fieldValidation=${fv}` : ''}`,
      {
        body: json({
          ...typo,
          metadata: { name: `fv-${fv.toLowerCase() || 'none'}`, namespace: NS },
        }),
      },
    );
    const res = statusOf(r);
    res.outcome += ` warning=${r.headers.warning !== undefined}`;
    return res;
  });
}
add('POST a Role with a wrong type (verbs: "get")', async (s) =>
  statusOf(
    await call(s, 'POST', `/apis/${G}/v1/namespaces/${NS}/roles`, {
      body: json({
        metadata: { name: 'wrongtype' },
        rules: [{ apiGroups: [''], resources: ['pods'], verbs: 'get' }],
      }),
    }),
  ),
);
add('POST a ServiceAccount with an unknown metadata field, Strict', async (s) =>
  statusOf(
    await call(s, 'POST', `/api/v1/namespaces/${NS}/serviceaccounts?fieldValidation=Strict`, {
      body: json({ metadata: { name: 'meta', labelz: { a: 'b' } } }),
    }),
  ),
);
add('PATCH (merge) a ServiceAccount with an unknown field, Strict', async (s) =>
  statusOf(
    await call(s, 'PATCH', `/api/v1/namespaces/${NS}/serviceaccounts/app?fieldValidation=Strict`, {
      body: json({ bogus: 1 }),
      contentType: 'application/merge-patch+json',
    }),
  ),
);

for (const fv of ['Strict', '']) {
  add(
    `POST a ServiceAccount with a duplicate key, fieldValidation=${fv || '(none)'}`,
    async (s) => {
      const r = await call(
        s,
        'POST',
        `/api/v1/namespaces/${NS}/serviceaccounts${fv ? `?fieldValidation=${fv}` : ''}`,
        {
          body: `{"metadata":{"name":"dup-${fv.toLowerCase() || 'none'}","labels":{"a":"1"},"labels":{"b":"2"}}}`,
        },
      );
      const res = statusOf(r);
      res.outcome += ` warning=${r.headers.warning !== undefined}`;
      if (r.status === 201)
        res.outcome += ` labels=${json((r.json() as { metadata: { labels?: unknown } }).metadata.labels)}`;
      return res;
    },
  );
}

// Deeply nested JSON
const deep = (n: number) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;
add('POST a ServiceAccount with 10k levels of nesting', async (s) => {
  const r = await call(s, 'POST', `/api/v1/namespaces/${NS}/serviceaccounts`, {
    body: `{"metadata":{"name":"deep"},"x":${deep(10_000)}}`,
  });
  return {
    outcome: r.status >= 400 && r.status < 500 ? '4xx' : String(r.status),
    wording: statusOf(r).wording,
  };
});
add('PATCH a ServiceAccount with 10k levels of nesting', async (s) => {
  const r = await call(s, 'PATCH', `/api/v1/namespaces/${NS}/serviceaccounts/app`, {
    body: `{"x":${deep(10_000)}}`,
    contentType: 'application/merge-patch+json',
  });
  return {
    outcome: r.status >= 400 && r.status < 500 ? '4xx' : String(r.status),
    wording: statusOf(r).wording,
  };
});

// kubectl create -f / apply -f of every kind kube-dev serves, with default validation.
const kinds: Array<[string, unknown, string]> = [
  ['Namespace', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'diff-ns' } }, 'apply'],
  [
    'ServiceAccount',
    {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: 'kubectl-sa', namespace: NS },
      automountServiceAccountToken: false,
    },
    'apply',
  ],
  [
    'Role',
    {
      apiVersion: `${G}/v1`,
      kind: 'Role',
      metadata: { name: 'kubectl-role', namespace: NS },
      rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }],
    },
    'apply',
  ],
  [
    'ClusterRole',
    {
      apiVersion: `${G}/v1`,
      kind: 'ClusterRole',
      metadata: { name: 'diff-kubectl' },
      rules: [{ nonResourceURLs: ['/x'], verbs: ['get'] }],
    },
    'apply',
  ],
  [
    'RoleBinding',
    {
      apiVersion: `${G}/v1`,
      kind: 'RoleBinding',
      metadata: { name: 'kubectl-rb', namespace: NS },
      roleRef: { apiGroup: G, kind: 'Role', name: 'kubectl-role' },
      subjects: [{ kind: 'ServiceAccount', name: 'kubectl-sa' }],
    },
    'apply',
  ],
  [
    'ClusterRoleBinding',
    {
      apiVersion: `${G}/v1`,
      kind: 'ClusterRoleBinding',
      metadata: { name: 'diff-kubectl' },
      roleRef: { apiGroup: G, kind: 'ClusterRole', name: 'diff-kubectl' },
      subjects: [{ kind: 'Group', apiGroup: G, name: 'g' }],
    },
    'apply',
  ],
  [
    'Secret',
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'kubectl-secret', namespace: NS },
      stringData: { a: 'b' },
    },
    'apply',
  ],
  [
    'Pod',
    {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'kubectl-pod', namespace: NS },
      spec: { serviceAccountName: 'app', containers: [{ name: 'c', image: 'busybox' }] },
    },
    'apply',
  ],
  [
    'TokenReview',
    { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token: 'not-a-token' } },
    'create',
  ],
  [
    'SelfSubjectReview',
    { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
    'create',
  ],
  [
    'SubjectAccessReview',
    {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SubjectAccessReview',
      spec: {
        user: 'nina',
        resourceAttributes: { namespace: NS, verb: 'get', resource: 'configmaps', name: 'one' },
      },
    },
    'create',
  ],
  [
    'LocalSubjectAccessReview',
    {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'LocalSubjectAccessReview',
      metadata: { namespace: NS },
      spec: {
        user: 'nina',
        resourceAttributes: { namespace: NS, verb: 'get', resource: 'configmaps', name: 'one' },
      },
    },
    'create',
  ],
  [
    'SelfSubjectAccessReview',
    {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SelfSubjectAccessReview',
      spec: { resourceAttributes: { verb: 'get', resource: 'pods' } },
    },
    'create',
  ],
  [
    'SelfSubjectRulesReview',
    {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SelfSubjectRulesReview',
      spec: { namespace: NS },
    },
    'create',
  ],
];
for (const [kind, obj, verb] of kinds) {
  add(`kubectl ${verb} -f ${kind}`, async (s) => {
    const r = await kubectl(s, [verb, '-f', '-', '-o', 'json'], yaml(obj));
    let detail = '';
    try {
      const o = JSON.parse(r.stdout) as {
        kind?: string;
        status?: { allowed?: boolean; authenticated?: boolean };
      };
      detail = `${o.kind} allowed=${o.status?.allowed} authenticated=${o.status?.authenticated}`;
    } catch {
      /* not JSON: failed */
    }
    return { outcome: `exit ${r.code} ${detail}`, wording: r.stderr.slice(0, 300) };
  });
  add(`kubectl ${verb} -f ${kind} with an unknown field`, async (s) => {
    const o = structuredClone(obj) as Record<string, unknown>;
    o.bogusField = 1;
    if (verb === 'apply') (o.metadata as Record<string, string>).name += '-x';
    return kubectlResult(await kubectl(s, [verb, '-f', '-', '-o', 'name'], yaml(o)));
  });
}

// More TokenRequest / TokenReview edges
add('TokenRequest: empty audiences list', async (s) => {
  const r = await call(s, 'POST', `/api/v1/namespaces/${NS}/serviceaccounts/app/token`, {
    body: json({ spec: { audiences: [] } }),
  });
  const res = statusOf(r);
  if (r.status === 201) {
    const c = decodeJwt((r.json() as { status: { token: string } }).status.token);
    res.outcome += ` aud=${json(c.aud) === json([s.issuer]) ? 'ISSUER' : json(c.aud)}`;
  }
  return res;
});
add('TokenRequest: an empty audience string', async (s) =>
  statusOf(
    await call(s, 'POST', `/api/v1/namespaces/${NS}/serviceaccounts/app/token`, {
      body: json({ spec: { audiences: ['a', ''] } }),
    }),
  ),
);
add('TokenRequest: dryRun=All still returns a token', async (s) => {
  const r = await call(s, 'POST', `/api/v1/namespaces/${NS}/serviceaccounts/app/token?dryRun=All`, {
    body: json({ spec: { audiences: ['a'] } }),
  });
  return {
    outcome: `${r.status} token=${r.status === 201 && !!(r.json() as { status?: { token?: string } }).status?.token}`,
  };
});
add('TokenRequest: GET is not allowed', async (s) =>
  statusOf(await call(s, 'GET', `/api/v1/namespaces/${NS}/serviceaccounts/app/token`)),
);
add('TokenRequest: in a namespace that does not exist', async (s) =>
  statusOf(
    await call(s, 'POST', '/api/v1/namespaces/nowhere/serviceaccounts/app/token', { body: '{}' }),
  ),
);
add('TokenReview: spec.audiences empty list means the API audience', async (s) =>
  reviewResult(await review(s, await mint(s, 'app'), []), s),
);
add(
  'TokenReview: a token from another issuer',
  async (s) => {
    const model = await mint(s, 'app', { audiences: ['precinct'] });
    const t = await forge(s, model, (c) => (c.iss = 'https://elsewhere.example'));
    return reviewResult(await review(s, t, ['precinct']), s);
  },
  'authenticated=false',
);
add('TokenReview: a token with an unknown kid, signed by the right key', async (s) => {
  const model = await mint(s, 'app', { audiences: ['precinct'] });
  const claims = decodeJwt(model) as Record<string, unknown>;
  const t = await new SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256', kid: 'not-the-kid' })
    .sign(createPrivateKey(s.signingKeyPem));
  return reviewResult(await review(s, t, ['precinct']), s);
});
add(
  'TokenReview: a token signed by another key',
  async (s) => {
    const model = await mint(s, 'app', { audiences: ['precinct'] });
    const { generateKeyPairSync } = await import('node:crypto');
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const t = await new SignJWT(decodeJwt(model) as Record<string, unknown>)
      .setProtectedHeader({ alg: 'RS256', kid: decodeProtectedHeader(model).kid! })
      .sign(privateKey);
    return reviewResult(await review(s, t, ['precinct']), s);
  },
  'authenticated=false',
);
add(
  'TokenReview: alg none',
  async (s) => {
    const model = await mint(s, 'app', { audiences: ['precinct'] });
    const [, p] = model.split('.');
    const h = Buffer.from(json({ alg: 'none', typ: 'JWT' })).toString('base64url');
    return reviewResult(await review(s, `${h}.${p}.`, ['precinct']), s);
  },
  'authenticated=false',
);
add('TokenReview: the sub claim changed to another ServiceAccount', async (s) => {
  const model = await mint(s, 'app', { audiences: ['precinct'] });
  const t = await forge(s, model, (c) => (c.sub = `system:serviceaccount:${NS}:other`));
  return reviewResult(await review(s, t, ['precinct']), s);
});
add(
  'TokenReview: not before one hour from now',
  async (s) => {
    const model = await mint(s, 'app', { audiences: ['precinct'] });
    const now = Math.floor(Date.now() / 1000);
    const t = await forge(s, model, (c) => Object.assign(c, { nbf: now + 3600 }));
    return reviewResult(await review(s, t, ['precinct']), s);
  },
  'authenticated=false',
);
add(
  'TokenReview: iat 30 s in the future (within leeway)',
  async (s) => {
    const model = await mint(s, 'app', { audiences: ['precinct'] });
    const now = Math.floor(Date.now() / 1000);
    const t = await forge(s, model, (c) => Object.assign(c, { iat: now + 30, nbf: now }));
    return reviewResult(await review(s, t, ['precinct']), s);
  },
  'authenticated=true',
);
add('TokenReview: a ServiceAccount token for the API used as a bearer', async (s) =>
  statusOf(
    await call(s, 'GET', `/api/v1/namespaces/${NS}/serviceaccounts/app`, {
      token: await mint(s, 'app'),
    }),
  ),
);
add('TokenReview: a ServiceAccount token for another audience used as a bearer', async (s) =>
  statusOf(
    await call(s, 'GET', '/api', { token: await mint(s, 'app', { audiences: ['precinct'] }) }),
  ),
);

// Who am I, what may I do
add('SelfSubjectReview as a ServiceAccount', async (s) => {
  const r = await call(s, 'POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', {
    token: await mint(s, 'app'),
    body: json({}),
  });
  const u = (
    r.json() as { status?: { userInfo?: { username?: string; groups?: string[]; uid?: string } } }
  ).status?.userInfo;
  return { outcome: `${r.status} ${u?.username} ${json(u?.groups)} uid=${!!u?.uid}` };
});
add(
  'SelfSubjectAccessReview as a ServiceAccount: list widgets (aggregated)',
  async (s) => {
    const r = await call(s, 'POST', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', {
      token: await mint(s, 'app'),
      body: json({
        spec: {
          resourceAttributes: {
            namespace: NS,
            verb: 'list',
            group: 'example.com',
            resource: 'widgets',
          },
        },
      }),
    });
    return {
      outcome: `${r.status} allowed=${(r.json() as { status?: { allowed?: boolean } }).status?.allowed === true}`,
    };
  },
  'allowed=true',
);
add(
  'SelfSubjectRulesReview as a ServiceAccount lists the aggregated rule',
  async (s) => {
    const r = await call(s, 'POST', '/apis/authorization.k8s.io/v1/selfsubjectrulesreviews', {
      token: await mint(s, 'app'),
      body: json({ spec: { namespace: NS } }),
    });
    const st = (
      r.json() as { status?: { resourceRules?: Array<{ resources?: string[]; verbs: string[] }> } }
    ).status;
    const widgets = st?.resourceRules?.some(
      (x) => x.resources?.includes('widgets') && x.verbs.includes('list'),
    );
    return { outcome: `${r.status} widgets=${widgets}` };
  },
  'widgets=true',
);
add('LocalSubjectAccessReview: namespace differs from the URL', async (s) =>
  statusOf(
    await call(
      s,
      'POST',
      `/apis/authorization.k8s.io/v1/namespaces/${NS}/localsubjectaccessreviews`,
      {
        body: json({
          spec: {
            user: 'nina',
            resourceAttributes: { namespace: 'default', verb: 'get', resource: 'configmaps' },
          },
        }),
      },
    ),
  ),
);
add(
  'LocalSubjectAccessReview: allowed in its namespace',
  async (s) => {
    const r = await call(
      s,
      'POST',
      `/apis/authorization.k8s.io/v1/namespaces/${NS}/localsubjectaccessreviews`,
      {
        body: json({
          spec: {
            user: 'nina',
            resourceAttributes: { namespace: NS, verb: 'get', resource: 'configmaps', name: 'one' },
          },
        }),
      },
    );
    return {
      outcome: `${r.status} allowed=${(r.json() as { status?: { allowed?: boolean } }).status?.allowed === true}`,
    };
  },
  'allowed=true',
);
add('SubjectAccessReview: both attribute kinds', async (s) =>
  statusOf(
    await call(s, 'POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', {
      body: json({
        spec: {
          user: 'x',
          resourceAttributes: { verb: 'get', resource: 'pods' },
          nonResourceAttributes: { path: '/x', verb: 'get' },
        },
      }),
    }),
  ),
);
add(
  'SubjectAccessReview: group only, via a RoleBinding subject',
  async (s) =>
    sar(s, {
      groups: ['deployers'],
      resourceAttributes: { namespace: NS, verb: 'get', group: 'apps', resource: 'deployments' },
    }),
  'allowed=true',
);
add(
  'SubjectAccessReview: ServiceAccount subject without groups',
  async (s) =>
    sar(s, {
      user: `system:serviceaccount:${NS}:app`,
      resourceAttributes: {
        namespace: NS,
        verb: 'list',
        group: 'example.com',
        resource: 'widgets',
      },
    }),
  'allowed=true',
);

// Impersonation
add('impersonation: the admin as a ServiceAccount reads what it may', async (s) => {
  const r = await kubectl(s, [
    'get',
    'sa',
    '-n',
    NS,
    '--as',
    `system:serviceaccount:${NS}:app`,
    '-o',
    'name',
  ]);
  return { outcome: `exit ${r.code}`, wording: r.stderr.slice(0, 200) };
});
add(
  'impersonation: a ServiceAccount may not impersonate',
  async (s) =>
    statusOf(
      await call(s, 'GET', '/api/v1/namespaces', {
        token: await mint(s, 'app'),
        headers: { 'impersonate-user': 'root' },
      }),
    ),
  '403',
);
add('impersonation: groups without a user', async (s) =>
  statusOf(await call(s, 'GET', '/api', { headers: { 'impersonate-group': 'g' } })),
);
add('impersonation: the admin as system:anonymous', async (s) =>
  statusOf(
    await call(s, 'GET', '/api/v1/namespaces', {
      headers: { 'impersonate-user': 'system:anonymous' },
    }),
  ),
);

// Objects: names, conflicts, validation
add('Namespace: an invalid name', async (s) =>
  statusOf(
    await call(s, 'POST', '/api/v1/namespaces', { body: json({ metadata: { name: 'Bad_Name' } }) }),
  ),
);
add('Namespace: delete default', async (s) => {
  const r = await call(s, 'DELETE', '/api/v1/namespaces/default?dryRun=All');
  return statusOf(r);
});
add('ServiceAccount: create twice', async (s) => {
  await call(s, 'POST', `/api/v1/namespaces/${NS}/serviceaccounts`, {
    body: json({ metadata: { name: 'twice' } }),
  });
  return statusOf(
    await call(s, 'POST', `/api/v1/namespaces/${NS}/serviceaccounts`, {
      body: json({ metadata: { name: 'twice' } }),
    }),
  );
});
add('ServiceAccount: an invalid name', async (s) =>
  statusOf(
    await call(s, 'POST', `/api/v1/namespaces/${NS}/serviceaccounts`, {
      body: json({ metadata: { name: 'Nope!' } }),
    }),
  ),
);
add('ServiceAccount: update with a stale resourceVersion', async (s) => {
  const cur = (await call(s, 'GET', `/api/v1/namespaces/${NS}/serviceaccounts/twice`)).json() as {
    metadata: Record<string, unknown>;
  };
  await call(s, 'PATCH', `/api/v1/namespaces/${NS}/serviceaccounts/twice`, {
    body: json({ metadata: { labels: { v: '2' } } }),
    contentType: 'application/merge-patch+json',
  });
  return statusOf(
    await call(s, 'PUT', `/api/v1/namespaces/${NS}/serviceaccounts/twice`, {
      body: json({ metadata: cur.metadata }),
    }),
  );
});
add('ServiceAccount: name in the body differs from the URL', async (s) =>
  statusOf(
    await call(s, 'PUT', `/api/v1/namespaces/${NS}/serviceaccounts/twice`, {
      body: json({ metadata: { name: 'other-name' } }),
    }),
  ),
);
add('ServiceAccount: generateName', async (s) => {
  const r = await call(s, 'POST', `/api/v1/namespaces/${NS}/serviceaccounts`, {
    body: json({ metadata: { generateName: 'gen-' } }),
  });
  return {
    outcome: `${r.status} ${/^gen-[a-z0-9]{5}$/.test(String((r.json() as { metadata?: { name?: string } }).metadata?.name))}`,
  };
});
add('ServiceAccount: get one that does not exist', async (s) =>
  statusOf(await call(s, 'GET', `/api/v1/namespaces/${NS}/serviceaccounts/ghost`)),
);
add('ServiceAccount: wrong content type', async (s) =>
  statusOf(
    await call(s, 'POST', `/api/v1/namespaces/${NS}/serviceaccounts`, {
      body: 'name: x',
      contentType: 'text/plain',
    }),
  ),
);
add('ServiceAccount: JSON patch that fails its test op', async (s) =>
  statusOf(
    await call(s, 'PATCH', `/api/v1/namespaces/${NS}/serviceaccounts/twice`, {
      body: json([{ op: 'test', path: '/metadata/name', value: 'nope' }]),
      contentType: 'application/json-patch+json',
    }),
  ),
);
add('ServiceAccount: automountServiceAccountToken as a string', async (s) =>
  statusOf(
    await call(s, 'POST', `/api/v1/namespaces/${NS}/serviceaccounts`, {
      body: json({ metadata: { name: 'auto' }, automountServiceAccountToken: 'yes' }),
    }),
  ),
);
add('Role: nonResourceURLs in a namespaced Role', async (s) =>
  statusOf(
    await call(s, 'POST', `/apis/${G}/v1/namespaces/${NS}/roles`, {
      body: json({
        metadata: { name: 'nru' },
        rules: [{ nonResourceURLs: ['/x'], verbs: ['get'] }],
      }),
    }),
  ),
);
add('Role: a rule without verbs', async (s) =>
  statusOf(
    await call(s, 'POST', `/apis/${G}/v1/namespaces/${NS}/roles`, {
      body: json({
        metadata: { name: 'noverbs' },
        rules: [{ apiGroups: [''], resources: ['pods'], verbs: [] }],
      }),
    }),
  ),
);
add('Role: a rule without apiGroups', async (s) =>
  statusOf(
    await call(s, 'POST', `/apis/${G}/v1/namespaces/${NS}/roles`, {
      body: json({
        metadata: { name: 'nogroups' },
        rules: [{ resources: ['pods'], verbs: ['get'] }],
      }),
    }),
  ),
);
add('ClusterRoleBinding: a ServiceAccount subject without namespace', async (s) =>
  statusOf(
    await call(s, 'POST', `/apis/${G}/v1/clusterrolebindings`, {
      body: json({
        metadata: { name: 'diff-nons' },
        roleRef: { apiGroup: G, kind: 'ClusterRole', name: 'view' },
        subjects: [{ kind: 'ServiceAccount', name: 'app' }],
      }),
    }),
  ),
);
add('RoleBinding: to a Role that does not exist', async (s) =>
  statusOf(
    await call(s, 'POST', `/apis/${G}/v1/namespaces/${NS}/rolebindings`, {
      body: json({
        metadata: { name: 'dangling' },
        roleRef: { apiGroup: G, kind: 'Role', name: 'ghost' },
        subjects: [{ kind: 'User', apiGroup: G, name: 'd' }],
      }),
    }),
  ),
);
add('RoleBinding: roleRef cannot change', async (s) =>
  statusOf(
    await call(s, 'PATCH', `/apis/${G}/v1/namespaces/${NS}/rolebindings/dangling`, {
      body: json({ roleRef: { apiGroup: G, kind: 'Role', name: 'named' } }),
      contentType: 'application/merge-patch+json',
    }),
  ),
);
add('RoleBinding: a subject of an unknown kind', async (s) =>
  statusOf(
    await call(s, 'POST', `/apis/${G}/v1/namespaces/${NS}/rolebindings`, {
      body: json({
        metadata: { name: 'oddsubject' },
        roleRef: { apiGroup: G, kind: 'Role', name: 'named' },
        subjects: [{ kind: 'Robot', name: 'r' }],
      }),
    }),
  ),
);
add(
  'kubectl apply of a changed Role patches it',
  async (s) => {
    const role = {
      apiVersion: `${G}/v1`,
      kind: 'Role',
      metadata: { name: 'kubectl-role', namespace: NS },
      rules: [{ apiGroups: [''], resources: ['pods', 'secrets'], verbs: ['get', 'list'] }],
    };
    const r = await kubectl(s, ['apply', '-f', '-'], yaml(role));
    const got = (
      await call(s, 'GET', `/apis/${G}/v1/namespaces/${NS}/roles/kubectl-role`)
    ).json() as { rules: Array<Record<string, unknown>> };
    const canonical = got.rules.map((rule) => Object.fromEntries(Object.entries(rule).sort()));
    return { outcome: `exit ${r.code} ${json(canonical)}`, wording: r.stdout.trim() };
  },
  'exit 0',
);
add(
  'kubectl create token --duration 10m --audience',
  async (s) => {
    const r = await kubectl(s, [
      'create',
      'token',
      'app',
      '-n',
      NS,
      '--duration',
      '10m',
      '--audience',
      'x',
    ]);
    const c = r.code === 0 ? decodeJwt(r.stdout.trim()) : {};
    return { outcome: `exit ${r.code} aud=${json(c.aud)} ttl=${(c.exp ?? 0) - (c.iat ?? 0)}` };
  },
  'exit 0',
);
add('kubectl create token --bound-object-kind Pod for a missing pod', async (s) =>
  kubectlResult(
    await kubectl(s, [
      'create',
      'token',
      'app',
      '-n',
      NS,
      '--bound-object-kind',
      'Pod',
      '--bound-object-name',
      'ghost',
    ]),
  ),
);
add('kubectl auth whoami as a ServiceAccount', async (s) =>
  kubectlResult(
    await kubectl(s, [
      'auth',
      'whoami',
      '--as',
      `system:serviceaccount:${NS}:app`,
      '-o',
      'jsonpath={.status.userInfo.username}',
    ]),
    true,
  ),
);
add('kubectl get sa -o name', async (s) => {
  const r = await kubectl(s, ['get', 'sa', '-n', NS, '-l', 'v=2', '-o', 'name']);
  return { outcome: `exit ${r.code} ${r.stdout.trim()}` };
});
add('kubectl delete sa then get', async (s) => {
  await kubectl(s, ['delete', 'sa', 'twice', '-n', NS]);
  return kubectlResult(await kubectl(s, ['get', 'sa', 'twice', '-n', NS]));
});

// Watch of ServiceAccounts
add('watch ServiceAccounts from a list resourceVersion', async (s) => {
  const list = (await call(s, 'GET', `/api/v1/namespaces/${NS}/serviceaccounts`)).json() as {
    metadata: { resourceVersion: string };
  };
  const events: string[] = [];
  const w = watch(
    s,
    `/api/v1/namespaces/${NS}/serviceaccounts?watch=true&resourceVersion=${list.metadata.resourceVersion}&fieldSelector=metadata.name%3Dwatched`,
    (e) => {
      const o = e.object as { metadata?: { name?: string; labels?: Record<string, string> } };
      events.push(`${e.type}:${o.metadata?.name}:${o.metadata?.labels?.step ?? ''}`);
    },
  );
  await w.ready;
  await call(s, 'POST', `/api/v1/namespaces/${NS}/serviceaccounts`, {
    body: json({ metadata: { name: 'watched', labels: { step: '1' } } }),
  });
  await call(s, 'PATCH', `/api/v1/namespaces/${NS}/serviceaccounts/watched`, {
    body: json({ metadata: { labels: { step: '2' } } }),
    contentType: 'application/merge-patch+json',
  });
  await call(s, 'DELETE', `/api/v1/namespaces/${NS}/serviceaccounts/watched`);
  await until(
    async () => events.length,
    (n) => n >= 3,
    10_000,
  );
  w.close();
  return { outcome: events.join(' ') };
});
add(
  'watch ServiceAccounts with the client-node Watch, from a list resourceVersion',
  async (s) => {
    const kc = new KubeConfig();
    kc.loadFromFile(s.kubeconfigPath);
    const list = await client(s).core.listNamespacedServiceAccount({ namespace: NS });
    const events: string[] = [];
    const ended: unknown[] = [];
    const ctl = await new Watch(kc).watch(
      `/api/v1/namespaces/${NS}/serviceaccounts`,
      { resourceVersion: list.metadata!.resourceVersion!, labelSelector: 'watch=me' },
      (type: string, o: { metadata?: { name?: string; labels?: Record<string, string> } }) =>
        events.push(`${type}:${o.metadata?.name}:${o.metadata?.labels?.step ?? ''}`),
      (err: unknown) => ended.push(err),
    );
    await client(s).core.createNamespacedServiceAccount({
      namespace: NS,
      body: { metadata: { name: 'watched-cn', labels: { watch: 'me', step: '1' } } },
    });
    await call(s, 'PATCH', `/api/v1/namespaces/${NS}/serviceaccounts/watched-cn`, {
      body: json({ metadata: { labels: { step: '2' } } }),
      contentType: 'application/merge-patch+json',
    });
    await client(s).core.deleteNamespacedServiceAccount({ name: 'watched-cn', namespace: NS });
    await until(
      async () => events.length,
      (n) => n >= 3,
      10_000,
    );
    ctl.abort();
    return { outcome: events.join(' ') };
  },
  'ADDED:watched-cn:1 MODIFIED:watched-cn:2 DELETED:watched-cn:2',
);
add('watch from a resourceVersion far in the past', async (s) => {
  const r = await call(
    s,
    'GET',
    `/api/v1/namespaces/${NS}/serviceaccounts?watch=true&resourceVersion=1&timeoutSeconds=1`,
  );
  const first = r.text.split('\n')[0] ?? '';
  let code = String(r.status);
  try {
    const e = JSON.parse(first) as { type: string; object: { code?: number } };
    code += ` ${e.type} ${e.object.code ?? ''}`;
  } catch {
    /* empty */
  }
  return { outcome: code };
});

/** Positive and negative controls: what the real server must answer (substring of its outcome). */
const EXPECT: Record<string, string> = {
  'escalation: a Role with only held permissions': '201',
  'escalation: a Role with more than held': '403',
  'bind: a RoleBinding to a held Role': '201',
  'bind: a RoleBinding to a Role with more than held': '403',
  'bind: after being granted verb bind on that Role': '201',
  'kubectl auth can-i get configmaps/one as nina': 'exit 0 yes',
  'kubectl auth can-i get configmaps/two as nina': 'exit 1 no',
  'kubectl auth can-i get /metrics as ursula': 'exit 0 yes',
  'TokenReview: valid token, default audience': 'authenticated=true',
  'TokenReview: forged copy with the right key (control)': 'authenticated=true',
  'TokenRequest/TokenReview: bound to a Pod, then the Pod is deleted': 'live=true',
  'TokenRequest/TokenReview: bound to a Secret, then the Secret is deleted': 'live=true',
  'TokenReview: ServiceAccount deleted': 'before=true after=false',
};

// ---------------------------------------------------------------------------------------------

describe('kube-dev answers like kube-apiserver', { skip }, () => {
  let real: KubeApiserver;
  let kd: KubeDev;
  const dir = tempDir('precinct-kube-real-');
  const sides: Side[] = [];

  before(async () => {
    [real, kd] = await Promise.all([
      startKubeApiserver(),
      startKubeDev({
        listen: { host: '127.0.0.1', port: 0 },
        advertiseHost: '127.0.0.1',
        dataDir: join(dir.path, 'kd'),
      }),
    ]);
    sides.push(
      {
        name: 'kube-dev',
        url: kd.url,
        issuer: kd.issuer,
        caPem: kd.caPem,
        adminToken: kd.adminToken,
        adminUser: 'kube-dev-admin',
        kubeconfigPath: kd.kubeconfigPath,
        signingKeyPem: readFileSync(join(dir.path, 'kd', 'sa-signing.key'), 'utf8'),
      },
      {
        name: 'kube-apiserver',
        url: real.url,
        issuer: real.issuer,
        caPem: real.caPem,
        adminToken: real.adminToken,
        adminUser: 'admin',
        kubeconfigPath: real.kubeconfigPath,
        signingKeyPem: real.serviceAccountKeyPem,
      },
    );
    for (const s of sides) {
      const ns = await call(s, 'POST', '/api/v1/namespaces', {
        body: json({ metadata: { name: NS } }),
      });
      assert.equal(ns.status, 201, `${s.name}: ${ns.text}`);
      for (const name of ['app', 'other']) {
        const r = await call(s, 'POST', `/api/v1/namespaces/${NS}/serviceaccounts`, {
          body: json({ metadata: { name } }),
        });
        assert.equal(r.status, 201, `${s.name}: ${r.text}`);
      }
    }
  });
  after(async () => {
    await Promise.all([real?.close(), kd?.close()]);
    dir.cleanup();
  });

  test('every scenario: same outcome on both servers (or a documented decision)', async () => {
    const controls: string[] = [];
    const rows: Array<{
      name: string;
      kind: 'identical' | 'wording' | 'outcome';
      a: Result;
      b: Result;
    }> = [];
    for (const sc of scenarios) {
      const [a, b] = await Promise.all(
        sides.map((s) =>
          sc
            .run(s)
            .catch((err: unknown): Result => ({ outcome: `threw ${String(err)}`.slice(0, 200) })),
        ),
      );
      const expect = sc.expect ?? EXPECT[sc.name];
      if (expect !== undefined && !b!.outcome.includes(expect))
        controls.push(`${sc.name}: kube-apiserver gave ${b!.outcome}, expected ${expect}`);
      const kind =
        a!.outcome !== b!.outcome
          ? 'outcome'
          : (a!.wording ?? '') !== (b!.wording ?? '')
            ? 'wording'
            : 'identical';
      rows.push({ name: sc.name, kind, a: a!, b: b! });
    }
    const count = (k: string) => rows.filter((r) => r.kind === k).length;
    const lines = [
      `kube-dev vs kube-apiserver: ${rows.length} checks, ${count('identical')} identical, ${count('wording')} differ in wording, ${count('outcome')} differ in outcome`,
      ...rows
        .filter((r) => r.kind === 'outcome')
        .map(
          (r) =>
            `  ${DOCUMENTED[r.name] ? 'documented' : 'BUG'}: ${r.name}\n      kube-dev:       ${r.a.outcome}\n      kube-apiserver: ${r.b.outcome}\n      (${(r.a.wording ?? '').slice(0, 140)} | ${(r.b.wording ?? '').slice(0, 140)})`,
        ),
    ];
    console.log(lines.join('\n'));
    if (process.env.PRECINCT_KUBE_REAL_REPORT)
      writeFileSync(process.env.PRECINCT_KUBE_REAL_REPORT, JSON.stringify(rows, null, 1));
    // A control the real server fails means the scenario did not test what it says.
    assert.deepEqual(controls, []);
    const bugs = rows.filter((r) => r.kind === 'outcome' && !DOCUMENTED[r.name]);
    assert.deepEqual(
      bugs.map((r) => `${r.name}: kube-dev ${r.a.outcome} / kube-apiserver ${r.b.outcome}`),
      [],
    );
    // A documented decision that no longer differs should leave the list.
    const stale = Object.keys(DOCUMENTED).filter(
      (n) => rows.find((r) => r.name === n)?.kind !== 'outcome',
    );
    assert.deepEqual(stale, []);
  });
});
