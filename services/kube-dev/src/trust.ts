import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSecretFile } from './kubeconfig.js';
import { createCertificateAuthority, type CertificateAuthority } from './pki.js';
import { generateSigningKey, signingKeyFromPem, type SigningKey } from './tokens.js';

/**
 * kube-dev's trust material: the CA, the ServiceAccount signing key, the admin token and the
 * issuers it has had, kept in the data dir (files 0600) across restarts, or made fresh in
 * memory without one.
 */

/** The CA, the ServiceAccount signing key and the admin bearer token. */
export interface Trust {
  ca: CertificateAuthority;
  key: SigningKey;
  adminToken: string;
}

function readOrCreate(path: string | undefined, create: () => string): string {
  if (path && existsSync(path)) return readFileSync(path, 'utf8');
  const v = create();
  if (path) writeSecretFile(path, v);
  return v;
}

async function loadCa(dataDir: string | undefined): Promise<CertificateAuthority> {
  const crt = dataDir && join(dataDir, 'ca.crt');
  const key = dataDir && join(dataDir, 'ca.key');
  if (crt && key && existsSync(crt) && existsSync(key)) {
    return { certPem: readFileSync(crt, 'utf8'), keyPem: readFileSync(key, 'utf8') };
  }
  const ca = await createCertificateAuthority();
  if (crt && key) {
    writeSecretFile(key, ca.keyPem);
    writeSecretFile(crt, ca.certPem);
  }
  return ca;
}

/** Loads the trust material from `dataDir`, creating (and writing) what is missing. */
export async function loadTrust(dataDir: string | undefined): Promise<Trust> {
  const ca = await loadCa(dataDir);
  const key = signingKeyFromPem(
    readOrCreate(dataDir && join(dataDir, 'sa-signing.key'), () => generateSigningKey().privatePem),
  );
  const adminToken = readOrCreate(dataDir && join(dataDir, 'admin.token'), () =>
    randomBytes(32).toString('base64url'),
  ).trim();
  return { ca, key, adminToken };
}

/**
 * The issuers whose tokens verify: `issuer` first, then up to 19 earlier ones from the data
 * dir, so tokens issued before a restart on another port or host keep verifying
 * (kube-apiserver allows several --service-account-issuer values the same way).
 */
export function acceptIssuer(dataDir: string | undefined, issuer: string): string[] {
  const issuersFile = dataDir && join(dataDir, 'issuers.json');
  let accepted = [issuer];
  if (issuersFile && existsSync(issuersFile)) {
    const prev = JSON.parse(readFileSync(issuersFile, 'utf8')) as string[];
    accepted = [issuer, ...prev.filter((i) => i !== issuer)].slice(0, 20);
  }
  if (issuersFile) writeSecretFile(issuersFile, JSON.stringify(accepted));
  return accepted;
}
