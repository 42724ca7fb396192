// npm run bench -- spiffe-jwt
// JWT-SVID validation (all SPIFFE rules + ES256 signature) vs a bare crypto.verify ES256 loop
// over the same token.
import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { JwtBundle, TrustDomain, parseAndValidateJwtSvid } from '@precinct/spiffe';
import { printTable, rate } from './table.js';

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const now = Math.floor(Date.now() / 1000);
const input = `${b64({ alg: 'ES256', kid: 'k1', typ: 'JWT' })}.${b64({
  sub: 'spiffe://example.org/ns/prod/sa/web',
  aud: ['orders'],
  exp: now + 3600,
  iat: now,
})}`;
const signature = sign('sha256', Buffer.from(input), {
  key: privateKey,
  dsaEncoding: 'ieee-p1363',
});
const token = `${input}.${signature.toString('base64url')}`;
const bundle = new JwtBundle(TrustDomain.parse('example.org'), new Map([['k1', publicKey]]));
parseAndValidateJwtSvid(token, bundle, ['orders']);

const data = Buffer.from(input);
const bare = await rate(() => {
  if (!verify('sha256', data, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature)) {
    throw new Error('bad');
  }
});
const ours = await rate(() => parseAndValidateJwtSvid(token, bundle, ['orders']));
printTable('@precinct/spiffe JWT-SVID', [
  {
    metric: 'JWT-SVID validations (ES256)',
    ours,
    reference: bare,
    unit: 'ops/s',
    target: '>= 70% of bare crypto.verify ES256',
    met: ours / bare >= 0.7,
  },
]);
