import 'reflect-metadata';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import * as x509 from '@peculiar/x509';
import {
  authorityFromCert,
  jwtAuthorityFromKey,
  type JwtAuthority,
  type Upstream,
  type X509Authority,
} from './ca.js';
import { IdentityServerError } from './errors.js';
import { ALGS, pkcs8, subtle, type CryptoKey, type KeyType } from './keys.js';

// keys.json (0600): the authorities and their roles, so a restart keeps the trust domain's
// keys and its place in the rotation.

/** An authority's place in the rotation. */
export type Role = 'active' | 'prepared' | 'retired';

interface StoredKeys {
  version: 1;
  x509: {
    state: 'active' | 'prepared' | 'retired';
    certPem: string;
    key: string;
    keyType: KeyType;
  }[];
  jwt: {
    state: 'active' | 'prepared' | 'retired';
    kid: string;
    notBefore: number;
    notAfter: number;
    key: string;
  }[];
}

/** The authorities of keys.json with their roles. */
export interface StoredAuthorities {
  x509: [Role, X509Authority][];
  jwt: [Role, JwtAuthority][];
}

/**
 * Reads keys.json (undefined when there is none) and tightens it to 0600. CAs that do not
 * chain to `upstream` (or, without one, are not self-signed) are left out: they would chain
 * to a root nobody trusts now. Throws ERR_KEYSTORE_CORRUPT.
 */
export async function readKeyStore(
  file: string,
  upstream: Upstream | undefined,
): Promise<StoredAuthorities | undefined> {
  let raw: string;
  try {
    raw = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  // Keys must never be readable by others; tighten a file someone loosened.
  await chmod(file, 0o600);
  const out: StoredAuthorities = { x509: [], jwt: [] };
  try {
    const stored = JSON.parse(raw) as StoredKeys;
    if (stored.version !== 1)
      throw new Error(`unknown keys.json version ${String(stored.version)}`);
    for (const s of stored.x509) {
      const cert = new x509.X509Certificate(s.certPem);
      const key = await subtle.importKey(
        'pkcs8',
        Buffer.from(s.key, 'base64'),
        ALGS[s.keyType].gen,
        true,
        ['sign'],
      );
      const fits = upstream ? cert.issuer === upstream.cert.subject : cert.issuer === cert.subject;
      if (fits)
        out.x509.push([s.state, await authorityFromCert(cert, key as CryptoKey, s.keyType)]);
    }
    for (const s of stored.jwt) {
      const priv = await subtle.importKey(
        'pkcs8',
        Buffer.from(s.key, 'base64'),
        ALGS['ec-p256'].gen,
        true,
        ['sign'],
      );
      out.jwt.push([
        s.state,
        await jwtAuthorityFromKey(
          s.kid,
          priv as CryptoKey,
          priv as CryptoKey,
          s.notBefore,
          s.notAfter,
        ),
      ]);
    }
  } catch (err) {
    throw new IdentityServerError('ERR_KEYSTORE_CORRUPT', `cannot read ${file}`, { cause: err });
  }
  return out;
}

/** Writes keys.json atomically (a 0600 temp file renamed over it). */
export async function writeKeyStore(file: string, a: StoredAuthorities): Promise<void> {
  const stored: StoredKeys = { version: 1, x509: [], jwt: [] };
  for (const [state, ca] of a.x509) {
    stored.x509.push({
      state,
      certPem: ca.cert.toString('pem'),
      key: await pkcs8(ca.privateKey),
      keyType: ca.keyType,
    });
  }
  for (const [state, k] of a.jwt) {
    stored.jwt.push({
      state,
      kid: k.kid,
      notBefore: k.notBefore,
      notAfter: k.notAfter,
      key: await pkcs8(k.privateKey),
    });
  }
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(stored), { mode: 0o600 });
  await rename(tmp, file);
}
