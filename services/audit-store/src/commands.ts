import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import {
  cachingVerifier,
  createSubjectAccessReviewAuthorizer,
  createTokenReviewVerifier,
  loadKubeConfig,
} from '@precinct/kube';
import {
  UsageError,
  listenOptionsFromEnv,
  parseFlags,
  waitForShutdown,
  type Command,
  type ListenOptions,
} from '@precinct/runtime';
import { AuditStoreError } from './errors.js';
import { verifyExport } from './export.js';
import { startAuditStore } from './server.js';

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
        'no-auth': {
          type: 'boolean',
          description: 'no Kubernetes auth, every writer is anonymous (needs --insecure-dev)',
        },
        'insecure-dev': {
          type: 'boolean',
          description: 'confirm --no-auth: for local demos only, never in a cluster',
        },
      },
      'Environment: DATABASE_URL (PostgreSQL), AUDIT_HMAC_KEY_FILE, HOST, PORT, KUBECONFIG.\n' +
        'Auth is on by default: TokenReview + SubjectAccessReview with the kubeconfig or the\n' +
        'in-cluster service account.',
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
    let auth: Parameters<typeof startAuditStore>[0]['auth'] = false;
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
      auth = {
        verifier: cachingVerifier(createTokenReviewVerifier({ kubeConfig })),
        authorizer: createSubjectAccessReviewAuthorizer({ kubeConfig }),
      };
    }
    const dataDir = flags['data-dir'] as string | undefined;
    const hmacFile =
      (flags['hmac-key-file'] as string | undefined) ?? process.env.AUDIT_HMAC_KEY_FILE;
    const signingKey = flags['signing-key'] as string | undefined;
    const store = await startAuditStore({
      databaseUrl: process.env.DATABASE_URL || undefined,
      dataDir,
      auth,
      authz: flags.namespace ? { namespace: flags.namespace as string } : undefined,
      hashKey: hmacFile ? readFileSync(hmacFile) : undefined,
      signingKeyPem: signingKey ? loadOrCreateSigningKey(signingKey, !!dataDir) : undefined,
      ...listenOpts,
    });
    console.log(`audit-store listening on ${store.url}`);
    await waitForShutdown();
    await store.close();
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
