import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  generateKeyPair as generateWebCryptoKeyPair,
  decodeJwt,
  decodeProtectedHeader,
} from 'jose';
import {
  createDelegationIssuer,
  createDelegationVerifier,
  DelegationConfigError,
  DELEGATION_HEADER,
  generateDelegationKey,
  type DelegationRequest,
} from '@precinct/delegation';
import { AGENT, AUDIENCE, EARLIER, ISSUER, PERSON, rejectsWith } from './support.js';

describe('local delegation issuer', () => {
  for (const alg of ['ES256', 'EdDSA'] as const) {
    test(`${alg}: issued tokens verify against the issuer's own JWKS`, async () => {
      const { privateKey, kid } = await generateDelegationKey(alg);
      const issuer = createDelegationIssuer({ issuer: ISSUER, privateKey, kid, alg });
      const jwks = await issuer.jwks();
      assert.equal(jwks.keys.length, 1);
      assert.equal(jwks.keys[0]?.kid, kid);
      assert.equal(jwks.keys[0]?.alg, alg);
      assert.equal('d' in (jwks.keys[0] ?? {}), false, 'the JWKS must hold the public key only');

      const token = await issuer.issue({
        subject: PERSON,
        actors: [AGENT, EARLIER],
        audience: AUDIENCE,
      });
      assert.deepEqual(decodeProtectedHeader(token), { alg, kid });
      const claims = decodeJwt(token);
      assert.equal((claims.exp as number) - (claims.iat as number), 300);
      assert.deepEqual(claims.act, { sub: AGENT, act: { sub: EARLIER } });

      const verifier = createDelegationVerifier({ issuer: ISSUER, audience: AUDIENCE, jwks });
      const d = await verifier.verify(token, { actor: AGENT });
      assert.equal(d.subject, PERSON);
      assert.deepEqual(d.actors, [AGENT, EARLIER]);
      await rejectsWith(verifier.verify(token, { actor: EARLIER }), 'actor_mismatch', token);
    });
  }

  test('accepts a WebCrypto private key and an audience list', async () => {
    const { privateKey } = await generateWebCryptoKeyPair('ES256');
    const issuer = createDelegationIssuer({ issuer: ISSUER, privateKey, kid: 'k1', alg: 'ES256' });
    const token = await issuer.issue({
      subject: PERSON,
      actors: [AGENT],
      audience: ['a', AUDIENCE],
      ttlSeconds: 60,
    });
    const verifier = createDelegationVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: await issuer.jwks(),
    });
    const d = await verifier.verify(token, { actor: AGENT });
    assert.deepEqual(d.audience, ['a', AUDIENCE]);
  });

  test('refuses a key that does not fit the algorithm, or a public key', async () => {
    const ed = await generateDelegationKey('EdDSA');
    assert.throws(
      () => createDelegationIssuer({ issuer: ISSUER, ...ed, alg: 'ES256' }),
      DelegationConfigError,
    );
    const { publicKey } = await generateWebCryptoKeyPair('ES256');
    assert.throws(
      () =>
        createDelegationIssuer({ issuer: ISSUER, privateKey: publicKey, kid: 'k', alg: 'ES256' }),
      DelegationConfigError,
    );
    assert.throws(
      () => createDelegationIssuer({ issuer: '', ...ed, alg: 'EdDSA' }),
      DelegationConfigError,
    );
  });

  test('refuses requests that would mint a token no verifier accepts', async () => {
    const key = await generateDelegationKey('ES256');
    const issuer = createDelegationIssuer({ issuer: ISSUER, ...key, alg: 'ES256' });
    const good: DelegationRequest = { subject: PERSON, actors: [AGENT], audience: AUDIENCE };
    assert.ok(await issuer.issue(good)); // positive control
    for (const over of [
      { subject: '' },
      { actors: [] },
      { actors: [AGENT, ''] },
      { audience: [] },
      { ttlSeconds: 0 },
      { ttlSeconds: 1.5 },
    ]) {
      await assert.rejects(issuer.issue({ ...good, ...over } as DelegationRequest), TypeError);
    }
  });

  test('the header name is lower-case, as Node presents incoming headers', () => {
    assert.equal(DELEGATION_HEADER, 'precinct-delegation');
    assert.equal(DELEGATION_HEADER, DELEGATION_HEADER.toLowerCase());
  });
});
