import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import {
  cachingVerifier,
  createSubjectAccessReviewAuthorizer,
  createTokenReviewVerifier,
  evictOnServiceAccountChange,
  loadKubeConfig,
  watchServiceAccounts,
  type ObjectWatch,
} from '@precinct/kube';
import {
  UsageError,
  listenOptionsFromEnv,
  parseFlags,
  waitForShutdown,
  type Command,
  type ListenOptions,
  parseDatabaseUrl,
} from '@precinct/runtime';
import type { JWK } from 'jose';
import { createDelegationVerifier } from '@precinct/delegation';
import { X509Source } from '@precinct/spiffe/workloadapi';
import { AuditStoreError } from './errors.js';
import { verifyExport } from '@precinct/audit-client';
import { DEFAULT_TOKEN_AUDIENCE, startAuditStore } from './server.js';

/** `HOST:PORT`, `[v6]:PORT` or `:PORT` (keeps the default host). */
function parseListen(value: string, fallbackHost: string): ListenOptions {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw new UsageError(`--listen must be HOST:PORT, [IPv6]:PORT or :PORT, got "${value}"`);
  }
  return { host: m[1] ?? (m[2] || fallbackHost), port };
}

/**
 * The export key file. With `--data-dir` the store is meant to persist, so a missing key is
 * created (0600) rather than silently replaced by an ephemeral one on every restart.
 */
function loadOrCreateSigningKey(file: string, persistent: boolean): Buffer {
  if (existsSync(file)) return readFileSync(file);
  if (!persistent) {
    throw new UsageError(
      `--signing-key ${file} does not exist (it is only created with --data-dir)`,
    );
  }
  const pem = generateKeyPairSync('ed25519')
    .privateKey.export({ type: 'pkcs8', format: 'pem' })
    .toString();
  writeFileSync(file, pem, { mode: 0o600, flag: 'wx' });
  return Buffer.from(pem);
}

/** A JWKS URL (fetched and cached by the verifier) or a file holding a JWKS. */
function loadJwks(value: string): URL | { keys: JWK[] } {
  if (/^https?:\/\//i.test(value)) return new URL(value);
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(value, 'utf8'));
  } catch (err) {
    throw new UsageError(
      `--delegation-jwks ${value}: not an http(s) URL nor a readable JSON file (${(err as Error).message})`,
    );
  }
  if (typeof doc !== 'object' || doc === null || !Array.isArray((doc as { keys?: unknown }).keys))
    throw new UsageError(`--delegation-jwks ${value}: not a JSON Web Key Set ({"keys": [...]})`);
  return doc as { keys: JWK[] };
}

async function openX509Source(): Promise<X509Source> {
  try {
    return await X509Source.create({ timeoutMs: 30_000 });
  } catch (err) {
    throw new AuditStoreError(
      'ERR_CONFIG',
      `no X.509-SVID from the Workload API at ${process.env.SPIFFE_ENDPOINT_SOCKET}: ${(err as Error).message}`,
      { cause: err },
    );
  }
}

/** `precinct audit-store`: runs the store until SIGINT/SIGTERM. */
export const auditStoreCommand: Command = {
  name: 'audit-store',
  summary: 'Run the tamper-evident audit store (PGlite by default, PostgreSQL with DATABASE_URL)',
  async run(argv) {
    const flags = parseFlags(
      this.name,
      this.summary,
      argv,
      {
        'data-dir': {
          type: 'string',
          description: 'PGlite data directory (default: in memory; ignored with DATABASE_URL)',
          placeholder: 'DIR',
        },
        listen: {
          type: 'string',
          description: 'address to listen on (default: HOST/PORT env, else [::]:8080)',
          placeholder: 'HOST:PORT',
        },
        'advertise-host': {
          type: 'string',
          description:
            'host others use to reach the store, in its printed URLs (default: the listen host; localhost for a wildcard)',
          placeholder: 'HOST',
        },
        'signing-key': {
          type: 'string',
          description:
            'Ed25519 PKCS#8 PEM key that signs exports, created 0600 if missing with --data-dir (default: ephemeral)',
          placeholder: 'FILE',
        },
        'hmac-key-file': {
          type: 'string',
          description:
            'key that turns chain hashes into HMAC-SHA256 (default: AUDIT_HMAC_KEY_FILE)',
          placeholder: 'FILE',
        },
        namespace: {
          type: 'string',
          description:
            'namespace of the RBAC object (default: POD_NAMESPACE, SA namespace, default)',
          placeholder: 'NS',
        },
        spiffe: {
          type: 'boolean',
          description:
            'serve SPIFFE mTLS: the SVID comes from the Workload API (SPIFFE_ENDPOINT_SOCKET), callers are attributed by SPIFFE ID',
        },
        'health-listen': {
          type: 'string',
          description:
            'with --spiffe: plain-HTTP address for /healthz, /readyz, /metrics (default [::]:8081)',
          placeholder: 'HOST:PORT',
        },
        'delegation-issuer': {
          type: 'string',
          description:
            'accept Precinct-Delegation tokens from this issuer (needs --delegation-jwks)',
          placeholder: 'URL',
        },
        'delegation-jwks': {
          type: 'string',
          description: "the delegation issuer's public keys: an http(s) URL or a JWKS file",
          placeholder: 'URL|FILE',
        },
        'delegation-audience': {
          type: 'string',
          description: 'audience delegation tokens must name (default: data-storage-service)',
          placeholder: 'NAME',
        },
        'token-audience': {
          type: 'string',
          description: `audience writers' ServiceAccount tokens must name (default: ${DEFAULT_TOKEN_AUDIENCE}); mint them with kubectl create token SA --audience ${DEFAULT_TOKEN_AUDIENCE}`,
          placeholder: 'NAME',
        },
        'max-event-age': {
          type: 'string',
          description:
            'oldest event_timestamp accepted, in days before now (default: 2555, the default retention)',
          placeholder: 'DAYS',
        },
        'max-clock-skew': {
          type: 'string',
          description: 'latest event_timestamp accepted, in seconds after now (default: 300)',
          placeholder: 'SECONDS',
        },
        'idempotency-ttl': {
          type: 'string',
          description:
            'how long an Idempotency-Key is remembered, in seconds (default: 86400); a retry later than this writes again',
          placeholder: 'SECONDS',
        },
        'no-auth': {
          type: 'boolean',
          description: 'no Kubernetes auth, every writer is anonymous (needs --insecure-dev)',
        },
        'insecure-dev': {
          type: 'boolean',
          description: 'confirm --no-auth: for local demos only, never in a cluster',
        },
      },
      'Environment: DATABASE_URL (PostgreSQL), AUDIT_HMAC_KEY_FILE, HOST, PORT, KUBECONFIG,\n' +
        'SPIFFE_ENDPOINT_SOCKET (with --spiffe).\n' +
        'Auth is on by default: TokenReview + SubjectAccessReview with the kubeconfig or the\n' +
        'in-cluster service account. With --spiffe, callers present X.509-SVIDs and RBAC is\n' +
        'asked for their SPIFFE ID as a User (and spiffe://<trust domain> as a Group).',
    );
    if (!flags) return;
    if (flags['no-auth'] && !flags['insecure-dev']) {
      throw new UsageError(
        '--no-auth turns off attribution; add --insecure-dev to confirm a local demo',
      );
    }
    const defaults = { host: '::', port: 8080 };
    const listenOpts =
      typeof flags.listen === 'string'
        ? parseListen(flags.listen, defaults.host)
        : listenOptionsFromEnv(defaults);
    const idemTtl =
      flags['idempotency-ttl'] === undefined ? undefined : Number(flags['idempotency-ttl']);
    if (
      idemTtl !== undefined &&
      (!Number.isInteger(idemTtl) || idemTtl < 60 || idemTtl > 30 * 86400)
    )
      throw new UsageError('--idempotency-ttl must be whole seconds, 60..2592000 (30 days)');
    const whole = (name: string, min: number, max: number): number | undefined => {
      const raw = flags[name];
      if (raw === undefined) return undefined;
      const n = Number(raw);
      if (typeof raw !== 'string' || !/^\d+$/.test(raw) || n < min || n > max)
        throw new UsageError(`--${name} must be a whole number, ${min}..${max}`);
      return n;
    };
    const maxEventAgeDays = whole('max-event-age', 1, 36500);
    const maxClockSkewSeconds = whole('max-clock-skew', 0, 86400);
    const tokenAudience = (flags['token-audience'] as string | undefined) ?? DEFAULT_TOKEN_AUDIENCE;
    if (!tokenAudience.trim()) throw new UsageError('--token-audience must not be empty');
    if (flags['token-audience'] !== undefined && (flags['no-auth'] || flags.spiffe))
      throw new UsageError(
        '--token-audience applies to bearer tokens (not with --no-auth or --spiffe)',
      );
    if (flags['health-listen'] !== undefined && !flags.spiffe)
      throw new UsageError('--health-listen only applies with --spiffe');
    const delegationIssuer = flags['delegation-issuer'] as string | undefined;
    const delegationJwks = flags['delegation-jwks'] as string | undefined;
    if ((delegationIssuer === undefined) !== (delegationJwks === undefined))
      throw new UsageError('--delegation-issuer and --delegation-jwks go together');
    if (flags['delegation-audience'] !== undefined && delegationIssuer === undefined)
      throw new UsageError('--delegation-audience needs --delegation-issuer');
    const delegation =
      delegationIssuer !== undefined && delegationJwks !== undefined
        ? createDelegationVerifier({
            issuer: delegationIssuer,
            audience:
              (flags['delegation-audience'] as string | undefined) ?? 'data-storage-service',
            jwks: loadJwks(delegationJwks),
          })
        : undefined;
    if (flags.spiffe && !process.env.SPIFFE_ENDPOINT_SOCKET)
      throw new UsageError('--spiffe needs SPIFFE_ENDPOINT_SOCKET (the Workload API address)');
    const healthListen: { host?: string; port: number } =
      typeof flags['health-listen'] === 'string'
        ? parseListen(flags['health-listen'], listenOpts.host ?? '::')
        : { port: 8081 };
    let auth: Parameters<typeof startAuditStore>[0]['auth'] = false;
    let serviceAccounts: ObjectWatch | undefined;
    if (!flags['no-auth']) {
      let kubeConfig;
      try {
        kubeConfig = loadKubeConfig();
      } catch (err) {
        throw new AuditStoreError(
          'ERR_CONFIG',
          'no Kubernetes credentials (set KUBECONFIG or run in a pod); for a local demo only: --no-auth --insecure-dev',
          { cause: err },
        );
      }
      // TokenReview for the store's audience only: a token minted for the Kubernetes API is
      // not accepted, so no writer hands the store a credential it could replay there.
      const verifier = cachingVerifier(
        createTokenReviewVerifier({ kubeConfig, audiences: [tokenAudience] }),
      );
      // Revocation: a deleted ServiceAccount's cached identities are evicted when the watch
      // sees it go (needs list/watch on serviceaccounts), not up to 5 minutes later.
      serviceAccounts = watchServiceAccounts({ kubeConfig });
      evictOnServiceAccountChange(verifier, serviceAccounts);
      auth = {
        verifier,
        authorizer: createSubjectAccessReviewAuthorizer({ kubeConfig }),
      };
    }
    const databaseUrl = process.env.DATABASE_URL
      ? parseDatabaseUrl(process.env.DATABASE_URL)
      : undefined;
    // Only after every flag checked out: the source holds a Workload API stream open.
    const source = flags.spiffe ? await openX509Source() : undefined;
    const dataDir = flags['data-dir'] as string | undefined;
    const hmacFile =
      (flags['hmac-key-file'] as string | undefined) ?? process.env.AUDIT_HMAC_KEY_FILE;
    const signingKey = flags['signing-key'] as string | undefined;
    const store = await startAuditStore({
      databaseUrl,
      dataDir,
      auth,
      ...(source
        ? {
            spiffe: {
              svidSource: source,
              bundleSource: source,
              healthPort: healthListen.port,
              ...(healthListen.host ? { healthHost: healthListen.host } : {}),
            },
          }
        : {}),
      ...(delegation ? { delegation } : {}),
      ...(idemTtl !== undefined ? { idempotencyTtlMs: idemTtl * 1000 } : {}),
      tokenAudiences: [tokenAudience],
      ...(maxEventAgeDays !== undefined ? { maxEventAgeMs: maxEventAgeDays * 86_400_000 } : {}),
      ...(maxClockSkewSeconds !== undefined ? { maxClockSkewMs: maxClockSkewSeconds * 1000 } : {}),
      authz: flags.namespace ? { namespace: flags.namespace as string } : undefined,
      hashKey: hmacFile ? readFileSync(hmacFile) : undefined,
      signingKeyPem: signingKey ? loadOrCreateSigningKey(signingKey, !!dataDir) : undefined,
      ...listenOpts,
      ...(typeof flags['advertise-host'] === 'string'
        ? { advertiseHost: flags['advertise-host'] }
        : {}),
    }).catch(async (err: unknown) => {
      serviceAccounts?.close();
      await source?.close();
      throw err;
    });
    console.log(`audit-store listening on ${store.url}`);
    if (store.healthUrl) console.log(`audit-store probes and metrics on ${store.healthUrl}`);
    await waitForShutdown();
    await store.close();
    serviceAccounts?.close();
    await source?.close();
  },
};

/** `precinct audit verify-export`: checks an export's detached signature offline. */
export const verifyExportCommand: Command = {
  name: 'verify-export',
  summary: 'Verify the detached Ed25519 signature of an audit export (JSON Lines)',
  async run(argv) {
    const flags = parseFlags('audit verify-export', this.summary, argv, {
      file: { type: 'string', description: 'the export (JSON Lines)', placeholder: 'FILE' },
      signature: {
        type: 'string',
        description: 'file holding the base64 signature (x-audit-export-signature header)',
        placeholder: 'FILE',
      },
      'public-key': {
        type: 'string',
        description: "the store's public key (SPKI PEM, GET /api/v1/audit/export/public-key)",
        placeholder: 'FILE',
      },
    });
    if (!flags) return;
    for (const f of ['file', 'signature', 'public-key'])
      if (typeof flags[f] !== 'string') throw new UsageError(`--${f} is required`);
    verifyExport(
      readFileSync(flags.file as string),
      readFileSync(flags.signature as string, 'utf8'),
      readFileSync(flags['public-key'] as string),
    );
    console.log('export signature OK');
  },
};
