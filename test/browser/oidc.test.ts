// People from a real OpenID Provider (oidc-provider on loopback): the dashboard's authorization
// code flow with PKCE, state and nonce, driven without a browser through the provider's own
// login and consent pages. Every refusal (state, replay, nonce, issuer, audience, expiry) has its
// positive control, and each is told apart by the dashboard's bounded refusal reason.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startBrowserWorld, type BrowserWorld } from './world.js';
import { DASHBOARD_CLIENT, startOidcPeer, type OidcPeer } from './oidc-peer.js';

let w: BrowserWorld;
let op: OidcPeer;
let other: OidcPeer;
let base: string;

before(async () => {
  const people = { alice: {}, bob: { groups: ['auditors'] }, carol: {}, 'no way!': {} };
  op = await startOidcPeer(people);
  other = await startOidcPeer(people);
  w = await startBrowserWorld({
    oidc: {
      issuer: op.issuer,
      clientId: DASHBOARD_CLIENT,
      clientSecret: op.clientSecret(DASHBOARD_CLIENT),
      auditorGroups: ['auditors'],
    },
  });
  base = w.dashboard.url;
  op.start(`${base}/api/auth/oidc/callback`);
  // Another provider that registered the same client id (and redirect URI) for itself.
  other.start(`${base}/api/auth/oidc/callback`);
});

after(async () => {
  await w?.close();
  await op?.close();
  await other?.close();
});

const cookieOf = (res: Response, name: string) =>
  res.headers
    .getSetCookie()
    .find((c) => c.startsWith(`${name}=`))
    ?.split(';')[0];

/** Starts a login at the dashboard: the provider URL (with state, nonce) and the login cookie. */
async function begin(): Promise<{ authUrl: URL; loginCookie: string }> {
  const res = await fetch(`${base}/api/auth/oidc/login`, { redirect: 'manual' });
  assert.equal(res.status, 302);
  const set = res.headers.getSetCookie().find((c) => c.startsWith('precinct_oidc='))!;
  assert.match(set, /HttpOnly/);
  assert.match(set, /SameSite=Lax/);
  const authUrl = new URL(res.headers.get('location')!);
  assert.equal(authUrl.origin, op.issuer);
  return { authUrl, loginCookie: set.split(';')[0]! };
}

async function callback(url: URL, loginCookie?: string): Promise<Response> {
  return fetch(url, { redirect: 'manual', headers: loginCookie ? { cookie: loginCookie } : {} });
}

async function refusals(): Promise<Map<string, number>> {
  const text = await (await fetch(`${w.dashboard.healthUrl}/metrics`)).text();
  const m = new Map<string, number>();
  for (const [, reason, n] of text.matchAll(
    /^precinct_dashboard_refused_total\{reason="([^"]+)"\} (\d+)/gm,
  ))
    m.set(reason!, Number(n));
  return m;
}

/** A full login as `login`; returns the session cookie. */
async function login(login: string): Promise<string> {
  const { authUrl, loginCookie } = await begin();
  const back = await op.authorize(authUrl.href, login);
  const res = await callback(back, loginCookie);
  assert.equal(res.status, 302, await res.text());
  assert.equal(res.headers.get('location'), '/');
  const session = cookieOf(res, 'precinct_session');
  assert.ok(session);
  return session;
}

/** Expects the callback `call` makes to be refused for `reason` (401 problem+json, no session). */
async function refused(call: () => Promise<Response>, reason: string) {
  const before = (await refusals()).get(reason) ?? 0;
  const res = await call();
  assert.equal(res.status, 401, reason);
  assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/);
  assert.equal(cookieOf(res, 'precinct_session'), undefined);
  const after = await refusals();
  assert.equal(
    after.get(reason),
    before + 1,
    `refused for ${reason}: ${JSON.stringify([...after])}`,
  );
}

describe('dashboard login through an OpenID Provider', () => {
  test('the login page is the provider; passwords are off; me names the source', async () => {
    const cfg = await (await fetch(`${base}/api/auth/config`)).json();
    assert.deepEqual(cfg, {
      source: 'oidc',
      login_url: '/api/auth/oidc/login',
      issuer: op.issuer,
    });
    const pw = await fetch(`${base}/api/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: base },
      body: JSON.stringify({ username: 'alice', password: w.world.passwords.alice }),
    });
    assert.equal(pw.status, 404, 'demo passwords are not an identity source now');
    const { authUrl } = await begin();
    assert.equal(authUrl.searchParams.get('code_challenge_method'), 'S256');
    assert.ok(authUrl.searchParams.get('code_challenge'));
    assert.ok(authUrl.searchParams.get('state'));
    assert.ok(authUrl.searchParams.get('nonce'));
    assert.equal(authUrl.searchParams.get('redirect_uri'), `${base}/api/auth/oidc/callback`);
    assert.equal(authUrl.searchParams.get('client_id'), DASHBOARD_CLIENT);
  });

  test('log in as alice, then a delegated access runs on that login', async () => {
    const cookie = await login('alice');
    const me = await (await fetch(`${base}/api/auth/me`, { headers: { cookie } })).json();
    assert.deepEqual(me, {
      user: 'alice',
      spiffe_id: 'spiffe://demo.example.com/user/alice',
      source: 'oidc',
      auditor: false,
    });
    const post = (path: string, body: object) =>
      fetch(`${base}${path}`, {
        method: 'POST',
        headers: { cookie, origin: base, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const direct = await post('/api/access-direct', { document_id: 'DOC-001' });
    assert.equal(direct.status, 200);
    assert.equal(((await direct.json()) as { granted: boolean }).granted, true);
    const delegated = await post('/api/access-delegated', {
      document_id: 'DOC-001',
      agent_id: 'summarizer',
    });
    assert.equal(
      ((await delegated.json()) as { granted: boolean }).granted,
      false,
      'summarizer lacks engineering',
    );
    const gpt4 = await post('/api/access-delegated', { document_id: 'DOC-002', agent_id: 'gpt4' });
    assert.equal(((await gpt4.json()) as { granted: boolean }).granted, true);
    // alice is no auditor: the audit API refuses her.
    const audit = await fetch(`${base}/api/platform/audit/events`, { headers: { cookie } });
    assert.equal(audit.status, 403);
    const out = await post('/api/auth/logout', {});
    assert.equal(out.status, 204);
    assert.equal((await fetch(`${base}/api/auth/me`, { headers: { cookie } })).status, 401);
  });

  test("the provider's groups claim makes bob an auditor (control: alice above is not)", async () => {
    const cookie = await login('bob');
    const me = (await (await fetch(`${base}/api/auth/me`, { headers: { cookie } })).json()) as {
      auditor: boolean;
    };
    assert.equal(me.auditor, true);
    const audit = await fetch(`${base}/api/platform/audit/events`, { headers: { cookie } });
    assert.equal(audit.status, 200);
    assert.equal(((await audit.json()) as { connected: boolean }).connected, true);
  });

  test('missing or altered state, or no login in progress: refused (control: intact, logged in)', async () => {
    {
      const { authUrl, loginCookie } = await begin();
      const back = await op.authorize(authUrl.href, 'alice');
      back.searchParams.set('state', 'x' + back.searchParams.get('state')!.slice(1));
      await refused(() => callback(back, loginCookie), 'oidc_state');
    }
    {
      const { authUrl, loginCookie } = await begin();
      const back = await op.authorize(authUrl.href, 'alice');
      back.searchParams.delete('state');
      await refused(() => callback(back, loginCookie), 'oidc_state');
    }
    {
      // The callback without the browser's login cookie (another browser, an attacker's link).
      const { authUrl } = await begin();
      const back = await op.authorize(authUrl.href, 'alice');
      await refused(() => callback(back), 'oidc_no_login');
    }
    assert.ok(await login('alice'));
  });

  test('a replayed callback is refused (control: its first use logged in)', async () => {
    const { authUrl, loginCookie } = await begin();
    const back = await op.authorize(authUrl.href, 'alice');
    const first = await callback(back, loginCookie);
    assert.equal(first.status, 302);
    assert.ok(cookieOf(first, 'precinct_session'));
    await refused(() => callback(back, loginCookie), 'oidc_no_login');
    // Replayed into a fresh login of the same browser: the state is not that login's.
    const fresh = await begin();
    await refused(() => callback(back, fresh.loginCookie), 'oidc_state');
  });

  test('ID tokens with the wrong nonce, issuer, audience, or expired: refused (control: a genuine one swapped in is accepted)', async () => {
    /** A login whose token response carries `idToken(nonce)` instead of the issued one. */
    async function withIdToken(idToken: (nonce: string) => Promise<string>): Promise<Response> {
      const { authUrl, loginCookie } = await begin();
      const nonce = authUrl.searchParams.get('nonce')!;
      op.swapIdToken = await idToken(nonce);
      try {
        const back = await op.authorize(authUrl.href, 'alice');
        return await callback(back, loginCookie);
      } finally {
        op.swapIdToken = undefined;
      }
    }
    // Control: the swap itself is harmless, a genuine token for this login is accepted.
    const ok = await withIdToken((n) => op.mintIdToken(DASHBOARD_CLIENT, n, 'alice'));
    assert.equal(ok.status, 302, await ok.text());
    assert.ok(cookieOf(ok, 'precinct_session'));

    await refused(
      () => withIdToken(() => op.mintIdToken(DASHBOARD_CLIENT, 'another-nonce', 'alice')),
      'oidc_nonce',
    );
    await refused(
      () => withIdToken((n) => other.mintIdToken(DASHBOARD_CLIENT, n, 'alice')),
      'oidc_issuer',
    );
    await refused(
      () => withIdToken((n) => op.mintIdToken('other-app', n, 'alice')),
      'oidc_audience',
    );
    await refused(
      () =>
        withIdToken(async (n) => {
          op.idTokenTtl = 1;
          try {
            const t = await op.mintIdToken(DASHBOARD_CLIENT, n, 'alice');
            // Past its expiry and the dashboard's 5 s clock tolerance.
            await new Promise((r) => setTimeout(r, 7_500));
            return t;
          } finally {
            op.idTokenTtl = 600;
          }
        }),
      'oidc_expired',
    );
  });

  test('a name that is not a valid person name is refused (control: alice)', async () => {
    const { authUrl, loginCookie } = await begin();
    const back = await op.authorize(authUrl.href, 'no way!');
    await refused(() => callback(back, loginCookie), 'oidc_bad_name');
    assert.ok(await login('alice'));
  });
});
