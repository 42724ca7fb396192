import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SpiffeError, SpiffeId, X509Bundle, type SpiffeErrorCode } from '@precinct/spiffe';

const src = fileURLToPath(new URL('../src/', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? sources(join(dir, e.name))
      : e.name.endsWith('.ts')
        ? [join(dir, e.name)]
        : [],
  );
}

test('SpiffeError.code is an ERR_* union: an unknown code does not compile', () => {
  const code: SpiffeErrorCode = 'ERR_JWTSVID_ALG';
  assert.equal(new SpiffeError(code, 'jwtsvid: x').code, 'ERR_JWTSVID_ALG');
  // @ts-expect-error the typecheck fails here if `code` is widened back to string
  const wrong = new SpiffeError('ERR_NOT_A_SPIFFE_CODE', 'x');
  assert.equal(wrong.code, 'ERR_NOT_A_SPIFFE_CODE');
});

test('the union lists exactly the codes the SDK throws (none unused, none missing)', () => {
  const errorsFile = readFileSync(join(src, 'errors.ts'), 'utf8');
  const declared = new Set(errorsFile.match(/'ERR_[A-Z0-9_]+'/g)!.map((s) => s.slice(1, -1)));
  const used = new Set<string>();
  for (const file of sources(src)) {
    if (file.endsWith('errors.ts')) continue;
    for (const m of readFileSync(file, 'utf8').matchAll(
      /[`']((?:\$\{prefix\}|ERR)_[A-Z0-9_]+)[`']/g,
    )) {
      const code = m[1]!;
      if (code.startsWith('${prefix}')) {
        // der.ts builds the certificate-parsing codes from its area's prefix.
        for (const p of ['ERR_X509BUNDLE', 'ERR_X509SVID']) used.add(code.replace('${prefix}', p));
      } else if (!code.endsWith('X509BUNDLE') && !code.endsWith('X509SVID')) used.add(code);
    }
  }
  assert.ok(used.size > 50, `only ${used.size} codes found: the scan is broken`);
  assert.deepEqual([...used].filter((c) => !declared.has(c)).sort(), []);
  assert.deepEqual([...declared].filter((c) => !used.has(c)).sort(), []);
});

test('thrown codes are the ERR_* strings, the same as the type says', () => {
  assert.throws(() => SpiffeId.parse('http://example.org/x'), { code: 'ERR_SPIFFEID_SCHEME' });
  assert.throws(() => X509Bundle.parse('example.org', Buffer.from('not der')), {
    code: 'ERR_X509BUNDLE_CERTIFICATES',
  });
});
