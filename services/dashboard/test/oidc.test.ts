// OidcLogin's own checks, without a provider: the configuration it refuses, and a callback with
// no login in progress. The full flow against a real OpenID Provider is test/browser/oidc.test.ts.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { OidcLogin, OidcRefused } from '../src/oidc.js';

const ok = { issuer: 'https://login.example.com', clientId: 'dash', clientSecret: 's3cret' };

describe('OidcLogin configuration', () => {
  test('https issuers, and http only on loopback (control: both accepted)', () => {
    assert.doesNotThrow(() => new OidcLogin(ok));
    assert.doesNotThrow(() => new OidcLogin({ ...ok, issuer: 'http://127.0.0.1:9000' }));
    assert.doesNotThrow(() => new OidcLogin({ ...ok, issuer: 'http://localhost:9000/realms/x' }));
    for (const issuer of ['http://login.example.com', 'ftp://x', 'not a url', '']) {
      assert.throws(() => new OidcLogin({ ...ok, issuer }), TypeError, issuer);
    }
  });

  test('client id and secret are required', () => {
    assert.throws(() => new OidcLogin({ ...ok, clientId: '' }), TypeError);
    assert.throws(() => new OidcLogin({ ...ok, clientSecret: '' }), TypeError);
  });

  test('a callback without a login in progress is refused before any network call', async () => {
    // The issuer does not exist: reaching the network would fail differently.
    const login = new OidcLogin({ ...ok, issuer: 'https://127.0.0.1:1' });
    const url = new URL('https://dash.example/api/auth/oidc/callback?code=c&state=s');
    for (const cookie of [undefined, '', 'short', 'A'.repeat(43)]) {
      await assert.rejects(login.finish(cookie, url), (e: unknown) => {
        assert.ok(e instanceof OidcRefused);
        assert.equal(e.reason, 'oidc_no_login');
        return true;
      });
    }
  });
});
