import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  createDelegationVerifier,
  DelegationError,
  type DelegationFailureReason,
} from '@precinct/delegation';
import { AGENT, AUDIENCE, ISSUER, makeKey, sign, type TestKey } from './support.js';
import { seededRandom } from '@precinct/testing';

const ALPHABET =
  'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_' + '.=+/ \t\n\u0000é🦀"{}';

function mutate(token: string, rnd: () => number): string {
  const int = (n: number) => Math.floor(rnd() * n);
  const pos = int(token.length);
  const ch = () => ALPHABET[int(ALPHABET.length)] as string;
  switch (int(8)) {
    case 0: // replace one character
      return token.slice(0, pos) + ch() + token.slice(pos + 1);
    case 1: // delete one character
      return token.slice(0, pos) + token.slice(pos + 1);
    case 2: // insert one character
      return token.slice(0, pos) + ch() + token.slice(pos);
    case 3: // flip one bit of one character
      return (
        token.slice(0, pos) +
        String.fromCharCode(token.charCodeAt(pos) ^ (1 << int(7))) +
        token.slice(pos + 1)
      );
    case 4: // truncate
      return token.slice(0, pos);
    case 5: {
      // swap two characters
      const other = int(token.length);
      const chars = [...token];
      [chars[pos], chars[other]] = [chars[other] as string, chars[pos] as string];
      return chars.join('');
    }
    case 6: {
      // duplicate a slice
      const end = pos + 1 + int(16);
      return token.slice(0, end) + token.slice(pos, end) + token.slice(end);
    }
    default: {
      // flip one bit in the decoded bytes of one segment, keeping the encoding canonical,
      // so the mutation reaches JSON parsing and the signature check rather than the decoder
      const parts = token.split('.');
      const i = int(3);
      const bytes = Buffer.from(parts[i] as string, 'base64url');
      bytes[int(bytes.length)]! ^= 1 << int(8);
      parts[i] = bytes.toString('base64url');
      return parts.join('.');
    }
  }
}

async function fuzz(key: TestKey, seed: number, rounds: number) {
  const verifier = createDelegationVerifier({
    issuer: ISSUER,
    audience: AUDIENCE,
    jwks: { keys: [key.jwk] },
  });
  const token = await sign(key);
  const expected = (await verifier.verify(token, { actor: AGENT })).claims; // positive control
  const rnd = seededRandom(seed);
  const reasons = new Map<DelegationFailureReason, number>();
  let noOps = 0;
  for (let round = 0; round < rounds; round++) {
    const mutant = mutate(token, rnd);
    let result;
    try {
      result = await verifier.verify(mutant, { actor: AGENT });
    } catch (err) {
      assert.ok(
        err instanceof DelegationError,
        `seed ${seed} round ${round}: ${String(err)} for ${JSON.stringify(mutant)}`,
      );
      if (mutant.length >= 16) assert.ok(!err.message.includes(mutant));
      reasons.set(err.reason, (reasons.get(err.reason) ?? 0) + 1);
      continue;
    }
    // Only a mutation that changed nothing may verify: the encoding is canonical, so even a
    // change to unused trailing bits is refused.
    assert.equal(mutant, token, `seed ${seed} round ${round}: a changed token verified`);
    assert.deepEqual(result.claims, expected);
    noOps++;
  }
  return { reasons, noOps };
}

for (const alg of ['ES256', 'EdDSA'] as const) {
  test(`${alg}: 3000 random mutations of a valid token are refused with DelegationError`, async (t) => {
    const seed = Number(process.env.PRECINCT_FUZZ_SEED ?? 0x5eed) + (alg === 'EdDSA' ? 1 : 0);
    const { reasons, noOps } = await fuzz(await makeKey(alg, `${alg}-fuzz`), seed, 3000);
    t.diagnostic(`seed ${seed}: ${JSON.stringify(Object.fromEntries(reasons))}, no-ops ${noOps}`);
    // The mutations must reach past the decoder too, or the fuzz proves little.
    assert.ok((reasons.get('malformed') ?? 0) > 0);
    assert.ok((reasons.get('signature') ?? 0) > 0, JSON.stringify([...reasons]));
  });
}
