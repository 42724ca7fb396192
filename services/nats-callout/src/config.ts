import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fromSeed } from '@nats-io/nkeys';
import { listenOptionsFromEnv, parseDuration } from '@precinct/runtime';
import { ConfigError } from './errors.js';

/** How the callout itself authenticates to NATS (it must be one of the server's `auth_users`). */
export type NatsClientAuth =
  | { kind: 'creds'; creds: Uint8Array }
  | { kind: 'token'; token: string }
  | { kind: 'userpass'; user: string; pass: string };

/** Validated configuration of the NATS auth callout. Built by loadConfig, or by hand in tests. */
export interface NatsCalloutConfig {
  /** Health, readiness and metrics listener (HOST, PORT; default `::`, 8080). */
  http: { host: string; port: number };
  /** NATS server URLs (NATS_URL, comma-separated; credentials removed). */
  natsServers: string[];
  natsAuth: NatsClientAuth;
  /** The account seed (`SA...`) that signs authorization responses and user JWTs. */
  signingKeySeed: string;
  /** The target account name written as the user JWT's audience (NATS_ACCOUNT). */
  account: string;
  /** Curve seed (`SX...`) for encrypted callout requests (NATS_XKEY_SEED_FILE). */
  xkeySeed?: string;
  /** ServiceAccount token checks. */
  token: {
    issuer: string;
    audience: string;
    jwksUrl?: string;
    jwksPath?: string;
    /** Use the pod's mounted CA and token when fetching in-cluster JWKS. */
    inCluster: boolean;
    /** PEM CA bundle trusted for JWKS_URL / OIDC discovery (JWKS_CA_FILE): only these. */
    caPem?: string;
    /**
     * PEM certificates added to the default roots (SSL_CERT_FILE, SSL_CERT_DIR), as Go's
     * crypto/x509 reads them for the reference service.
     */
    extraRootsPem?: string[];
    /** Least time between two JWKS fetches, also the retry period while failing (JWKS_RETRY_INTERVAL, default 10s). */
    retryIntervalSeconds?: number;
    /** A healthy key set is refetched this often (JWKS_REFRESH_INTERVAL, default 5m). */
    refreshIntervalSeconds?: number;
    /** Not ready once the keys could not be refreshed for this long (JWKS_MAX_STALE, default 10m). */
    maxStaleSeconds?: number;
  };
  kube: { inCluster: boolean; kubeconfigPath?: string; namespace?: string };
  /** Upper bound on a user JWT's lifetime in seconds (NATS_USER_JWT_MAX_TTL, default 1h). */
  userJwtMaxTtlSeconds: number;
  /** Queue group shared by replicas (NATS_QUEUE_GROUP). */
  queueGroup: string;
  /** Grants `_INBOX.>` to every subscriber (NATS_SHARED_INBOX): weaker, see the docs. */
  sharedInbox: boolean;
  logLevel: string;
  /** Settings that were ignored, for the log (not errors: the reference ignores them too). */
  warnings?: string[];
}

const IN_CLUSTER_ISSUER = 'https://kubernetes.default.svc';
const IN_CLUSTER_JWKS = 'https://kubernetes.default.svc/openid/v1/jwks';
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const MAX_TTL_LIMIT_SECONDS = 7 * 24 * 3600;

/**
 * Parses `90`, `90s`, `15m`, `1h`, `1h30m` into seconds with the runtime's one duration
 * grammar, less its day unit (the reference's Go durations have none, so `1d` stays an error
 * as it always was here); undefined when malformed.
 */
export function parseDurationSeconds(raw: string): number | undefined {
  if (raw.toLowerCase().includes('d')) return undefined;
  try {
    return parseDuration(raw, 'duration');
  } catch {
    return undefined;
  }
}

const SEED_BEGIN = ['BEGIN USER NKEY SEED', 'BEGIN NKEY SEED'];
const SEED_END = ['END USER NKEY SEED', 'END NKEY SEED'];

/**
 * The account seed in NATS_SIGNING_KEY_FILE, in the formats the reference accepts
 * (portswigger-tim/nats-k8s-oidc-callout's LoadSigningKeyFromFile): the bare seed, surrounding
 * whitespace ignored, or, when the file says BEGIN anywhere, the last non-empty line of a
 * `-----BEGIN NKEY SEED-----` or `-----BEGIN USER NKEY SEED-----` block (an nsc creds file).
 * The seed's CRC is checked (by @nats-io/nkeys) and it must be an account seed. A problem
 * never quotes the file.
 */
export function parseSigningKeyFile(text: string): { seed: string } | { problem: string } {
  let seed = text.trim();
  if (seed.includes('BEGIN')) {
    let inBlock = false;
    let found = '';
    for (const raw of seed.split('\n')) {
      const line = raw.trim();
      if (SEED_BEGIN.some((m) => line.includes(m))) {
        inBlock = true;
        continue;
      }
      if (SEED_END.some((m) => line.includes(m))) break;
      if (inBlock && line !== '') found = line;
    }
    if (found === '') {
      return { problem: 'has no seed (no -----BEGIN NKEY SEED----- block with a seed in it)' };
    }
    seed = found;
  } else {
    // Go's base32 decoder skips line breaks: a seed wrapped over lines loads there too.
    seed = seed.replace(/[\r\n]/g, '');
  }
  if (seed.startsWith('SU')) {
    return {
      problem:
        'holds a user seed (SU...): the callout needs the account seed (SA...) named as issuer in auth_callout',
    };
  }
  if (!/^SA[A-Z2-7]{56}$/.test(seed)) return { problem: 'does not hold an account seed (SA...)' };
  try {
    fromSeed(new TextEncoder().encode(seed));
  } catch {
    return { problem: 'holds a damaged account seed (checksum mismatch)' };
  }
  return { seed };
}

function parseBool(raw: string): boolean | undefined {
  const v = raw.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(v)) return true;
  if (['false', '0', 'no', 'off'].includes(v)) return false;
  return undefined;
}

/**
 * Reads the callout's configuration from environment variables (the names of
 * portswigger-tim/nats-k8s-oidc-callout, so its Helm values carry over). Reads the seed files.
 * Throws ConfigError listing every problem at once, one line each naming the variable; never
 * falls back to a default for a value that is set but unparsable.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): NatsCalloutConfig {
  const problems: string[] = [];
  const get = (name: string): string | undefined => {
    const v = env[name]?.trim();
    return v === '' ? undefined : v;
  };
  const bool = (name: string, def: boolean): boolean => {
    const raw = get(name);
    if (raw === undefined) return def;
    const v = parseBool(raw);
    if (v === undefined) problems.push(`${name} must be true or false, got "${raw}"`);
    return v ?? def;
  };
  const readSecretFile = (name: string): string | undefined => {
    const path = get(name);
    if (path === undefined) return undefined;
    try {
      return readFileSync(path, 'utf8').trim();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      problems.push(`${name}: cannot read "${path}" (${code})`);
      return undefined;
    }
  };

  let http = { host: '::', port: 8080 };
  try {
    http = listenOptionsFromEnv(http, env);
  } catch (err) {
    problems.push((err as Error).message);
  }

  // NATS connection: URL(s), and exactly one way for the callout to authenticate.
  const rawUrl = get('NATS_URL') ?? 'nats://nats:4222';
  const natsServers: string[] = [];
  let urlUser: { user: string; pass: string } | undefined;
  let urlUserProblem = false;
  for (const part of rawUrl
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    let u: URL;
    try {
      u = new URL(part.includes('://') ? part : `nats://${part}`);
    } catch {
      problems.push(`NATS_URL: "${part.replace(/\/\/[^@/]*@/, '//***@')}" is not a URL`);
      continue;
    }
    if (!['nats:', 'tls:'].includes(u.protocol)) {
      problems.push(`NATS_URL must use nats:// or tls://, got "${u.protocol}//"`);
      continue;
    }
    if (u.username) {
      const user = decodeURIComponent(u.username);
      const pass = decodeURIComponent(u.password);
      if (!pass) {
        urlUserProblem = true;
        problems.push('NATS_URL has a user but no password (use NATS_TOKEN for a token)');
      } else if (urlUser && (urlUser.user !== user || urlUser.pass !== pass)) {
        problems.push('NATS_URL lists different credentials for different servers');
      } else urlUser = { user, pass };
      u.username = '';
      u.password = '';
    }
    natsServers.push(`${u.protocol}//${u.host}`);
  }
  const credsPath = get('NATS_USER_CREDS_FILE') ?? get('NATS_CREDS_FILE');
  const credsVar = get('NATS_USER_CREDS_FILE') ? 'NATS_USER_CREDS_FILE' : 'NATS_CREDS_FILE';
  const token = get('NATS_TOKEN');
  const authSources = [
    credsPath !== undefined ? credsVar : undefined,
    token !== undefined ? 'NATS_TOKEN' : undefined,
    urlUser ? 'user:password in NATS_URL' : undefined,
  ].filter((x): x is string => x !== undefined);
  let natsAuth: NatsClientAuth | undefined;
  if (get('NATS_USER_CREDS_FILE') && get('NATS_CREDS_FILE')) {
    problems.push('NATS_USER_CREDS_FILE and NATS_CREDS_FILE are both set: keep one');
  }
  if (authSources.length > 1) {
    problems.push(`${authSources.join(' and ')} are exclusive: the callout uses one credential`);
  } else if (authSources.length === 0 && !urlUserProblem) {
    problems.push(
      'NATS_USER_CREDS_FILE, NATS_TOKEN or user:password in NATS_URL is required (an auth_users entry of the server)',
    );
  } else if (credsPath !== undefined) {
    const creds = readSecretFile(credsVar);
    if (creds !== undefined) {
      if (!creds.includes('-----BEGIN NATS USER JWT-----') || !/\bSU[A-Z2-7]{50,}/.test(creds)) {
        problems.push(`${credsVar}: "${credsPath}" is not a NATS credentials file`);
      } else natsAuth = { kind: 'creds', creds: new TextEncoder().encode(creds) };
    }
  } else if (token !== undefined) natsAuth = { kind: 'token', token };
  else if (urlUser) natsAuth = { kind: 'userpass', ...urlUser };

  // Signing: an account seed, bare or in a creds-style block (the reference's formats).
  let signingKeySeed: string | undefined;
  if (get('NATS_SIGNING_KEY_FILE') === undefined) {
    problems.push('NATS_SIGNING_KEY_FILE is required (a file holding the account seed, SA...)');
  } else {
    const text = readSecretFile('NATS_SIGNING_KEY_FILE');
    if (text !== undefined) {
      const r = parseSigningKeyFile(text);
      if ('problem' in r) problems.push(`NATS_SIGNING_KEY_FILE ${r.problem}`);
      else signingKeySeed = r.seed;
    }
  }
  const account = get('NATS_ACCOUNT');
  if (account === undefined) {
    problems.push('NATS_ACCOUNT is required (the name of the account clients are placed in)');
  } else if (/[\s.*>]/.test(account)) {
    problems.push(`NATS_ACCOUNT must be an account name, got "${account}"`);
  }
  let xkeySeed: string | undefined;
  if (get('NATS_XKEY_SEED_FILE') !== undefined) {
    const seed = readSecretFile('NATS_XKEY_SEED_FILE');
    if (seed !== undefined) {
      if (!/^SX[A-Z2-7]{56}$/.test(seed)) {
        problems.push('NATS_XKEY_SEED_FILE does not hold a curve (xkey) seed (SX...)');
      } else xkeySeed = seed;
    }
  }

  // ServiceAccount tokens.
  const inCluster = bool('K8S_IN_CLUSTER', true);
  const jwksUrl = get('JWKS_URL');
  const jwksPath = get('JWKS_PATH');
  if (jwksUrl !== undefined && jwksPath !== undefined) {
    problems.push('JWKS_URL and JWKS_PATH are exclusive: keys come from one place');
  }
  if (jwksUrl !== undefined) {
    try {
      const u = new URL(jwksUrl);
      if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new Error('scheme');
    } catch {
      problems.push(`JWKS_URL must be an http(s) URL, got "${jwksUrl}"`);
    }
  }
  let caPem: string | undefined;
  if (get('JWKS_CA_FILE') !== undefined) {
    caPem = readSecretFile('JWKS_CA_FILE');
    if (caPem !== undefined && !caPem.includes('-----BEGIN CERTIFICATE-----')) {
      problems.push('JWKS_CA_FILE does not hold a PEM certificate');
      caPem = undefined;
    }
  }
  // Go's crypto/x509 (the reference) adds SSL_CERT_FILE and the files of SSL_CERT_DIR to the
  // roots every https request trusts; Node's TLS does not read them, so they are read here. As
  // in Go, an unreadable or certificate-less SSL_CERT_FILE does not stop start-up (base images
  // often set it): it is said in the log instead.
  const extraRootsPem: string[] = [];
  const warnings: string[] = [];
  const certFile = get('SSL_CERT_FILE');
  if (certFile !== undefined) {
    try {
      const pem = readFileSync(certFile, 'utf8');
      if (pem.includes('-----BEGIN CERTIFICATE-----')) extraRootsPem.push(pem);
      else warnings.push(`SSL_CERT_FILE "${certFile}" holds no PEM certificate; ignored`);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      warnings.push(`SSL_CERT_FILE: cannot read "${certFile}" (${code}); ignored`);
    }
  }
  const certDirs = get('SSL_CERT_DIR');
  if (certDirs !== undefined) {
    for (const d of certDirs.split(':').filter(Boolean)) {
      let names: string[];
      try {
        names = readdirSync(d);
      } catch {
        continue; // as Go: a missing directory is skipped
      }
      for (const n of names.sort()) {
        try {
          const p = join(d, n);
          if (!statSync(p).isFile()) continue;
          const pem = readFileSync(p, 'utf8');
          if (pem.includes('-----BEGIN CERTIFICATE-----')) extraRootsPem.push(pem);
        } catch {
          // unreadable entries are skipped, as Go does
        }
      }
    }
  }
  const duration = (name: string, def: number, min: number, max: number): number => {
    const raw = get(name);
    if (raw === undefined) return def;
    const v = parseDurationSeconds(raw);
    if (v === undefined || v < min || v > max) {
      problems.push(
        `${name} must be a duration from ${min}s to ${max}s (e.g. 10s, 5m), got "${raw}"`,
      );
      return def;
    }
    return v;
  };
  const retryIntervalSeconds = duration('JWKS_RETRY_INTERVAL', 10, 1, 3600);
  const refreshIntervalSeconds = duration('JWKS_REFRESH_INTERVAL', 300, 1, 24 * 3600);
  const maxStaleSeconds = duration('JWKS_MAX_STALE', 600, 1, 7 * 24 * 3600);
  const issuer = get('JWT_ISSUER') ?? (inCluster ? IN_CLUSTER_ISSUER : undefined);
  if (issuer === undefined) {
    problems.push('JWT_ISSUER is required outside the cluster (K8S_IN_CLUSTER=false)');
  }
  const audience = get('JWT_AUDIENCE') ?? 'nats';

  const userJwtMaxTtlRaw = get('NATS_USER_JWT_MAX_TTL');
  let userJwtMaxTtlSeconds = 3600;
  if (userJwtMaxTtlRaw !== undefined) {
    const v = parseDurationSeconds(userJwtMaxTtlRaw);
    if (v === undefined || v <= 0 || v > MAX_TTL_LIMIT_SECONDS) {
      problems.push(
        `NATS_USER_JWT_MAX_TTL must be a duration from 1s to 168h (e.g. 15m, 1h), got "${userJwtMaxTtlRaw}"`,
      );
    } else userJwtMaxTtlSeconds = v;
  }
  const queueGroup = get('NATS_QUEUE_GROUP') ?? 'nats-callout';
  if (/[\s*>]/.test(queueGroup)) {
    problems.push(`NATS_QUEUE_GROUP must be a plain name, got "${queueGroup}"`);
  }
  const sharedInbox = bool('NATS_SHARED_INBOX', false);
  const logLevel = (get('LOG_LEVEL') ?? 'info').toLowerCase();
  if (!LOG_LEVELS.includes(logLevel)) {
    problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  }
  const namespace = get('K8S_NAMESPACE');
  if (namespace !== undefined && !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(namespace)) {
    problems.push(`K8S_NAMESPACE must be a namespace name, got "${namespace}"`);
  }

  if (problems.length > 0) throw new ConfigError(problems);
  return {
    http,
    natsServers,
    natsAuth: natsAuth!,
    signingKeySeed: signingKeySeed!,
    account: account!,
    ...(xkeySeed ? { xkeySeed } : {}),
    token: {
      issuer: issuer!,
      audience,
      ...(jwksUrl ? { jwksUrl } : jwksPath ? {} : inCluster ? { jwksUrl: IN_CLUSTER_JWKS } : {}),
      ...(jwksPath ? { jwksPath } : {}),
      inCluster,
      ...(caPem ? { caPem } : {}),
      ...(extraRootsPem.length > 0 ? { extraRootsPem } : {}),
      retryIntervalSeconds,
      refreshIntervalSeconds,
      maxStaleSeconds,
    },
    kube: {
      inCluster,
      ...(get('KUBECONFIG') ? { kubeconfigPath: get('KUBECONFIG')! } : {}),
      ...(namespace ? { namespace } : {}),
    },
    userJwtMaxTtlSeconds,
    queueGroup,
    sharedInbox,
    logLevel,
    ...(warnings.length > 0 ? { warnings } : {}),
  };
}
