// The identity server rotates its JWT-SVID signing key (short key lifetime): the bundle update
// on the Workload API makes the session log in again, and Vault, using OIDC discovery, accepts
// SVIDs signed by the new key. Real identity server, real Vault.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { peerSkip, type VaultServer } from '@precinct/testing';
import { VaultSession, workloadPolicy, type VaultAdmin } from '@precinct/secrets';
import { AUDIENCE, spiffeId, startIdentity, startVaultWithJwtAuth, until } from './support.js';

const skip = peerSkip('vault');
let idp: Awaited<ReturnType<typeof startIdentity>>;
let vault: VaultServer;
let admin: VaultAdmin;

before(async () => {
  if (skip) return;
  // Keys live 12 s: the next is published at 6 s and activated at 10 s.
  idp = await startIdentity(['orders'], { orders: 2 }, { jwtKeyTtlMs: 12_000 });
  ({ vault, admin } = await startVaultWithJwtAuth(idp.identity));
  await admin.writePolicy('orders', workloadPolicy({ kvPaths: ['apps/orders/*'] }));
  await admin.writeWorkloadRole({
    role: 'orders',
    spiffeId: spiffeId('orders'),
    audience: AUDIENCE,
    policies: ['orders'],
  });
  await admin.request('POST', 'secret/data/apps/orders/db', { data: { v: 'x' } });
});

after(async () => {
  await vault?.close();
  await idp?.close();
});

test(
  'a JWT key rotation re-logs in, and SVIDs signed by the new key are accepted',
  { skip },
  async () => {
    const firstKid = idp.identity.keys.activeJwtAuthority().kid;
    const s = await VaultSession.login({
      address: vault.url,
      role: 'orders',
      audience: AUDIENCE,
      jwtSource: idp.sources.get('orders')!,
    });
    try {
      await until(
        () => idp.identity.keys.activeJwtAuthority().kid !== firstKid,
        'a new active JWT key',
        60_000,
      );
      await until(() => s.logins >= 2, 'a re-login after the bundle update', 30_000);
      const svid = await idp.sources.get('orders')!.fetchJwtSvid({ audience: AUDIENCE });
      const kid = JSON.parse(Buffer.from(svid.token.split('.')[0]!, 'base64url').toString()).kid;
      assert.notEqual(kid, firstKid, 'control: the SVID is signed by the new key');
      const before = s.logins;
      await s.relogin();
      assert.equal(s.logins, before + 1);
      assert.equal((await s.readKv('apps/orders/db')).data.v, 'x');
    } finally {
      await s.close();
    }
  },
);
