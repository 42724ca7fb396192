import { readFileSync } from 'node:fs';
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
} from '@precinct/runtime';
import { verifyExport } from './export.js';
import { startAuditStore } from './server.js';

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
          description: 'PGlite data directory (default: in memory)',
          placeholder: 'DIR',
        },
        'signing-key': {
          type: 'string',
          description: 'Ed25519 PKCS#8 PEM key that signs exports (default: ephemeral)',
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
          description: 'local development only: no Kubernetes auth, every writer is anonymous',
        },
      },
      'Environment: DATABASE_URL, AUDIT_HMAC_KEY_FILE, HOST, PORT (default 8080), KUBECONFIG.',
    );
    if (!flags) return;
    const listenOpts = listenOptionsFromEnv({ host: '::', port: 8080 });
    let auth: Parameters<typeof startAuditStore>[0]['auth'] = false;
    if (!flags['no-auth']) {
      const kubeConfig = loadKubeConfig();
      auth = {
        verifier: cachingVerifier(createTokenReviewVerifier({ kubeConfig })),
        authorizer: createSubjectAccessReviewAuthorizer({ kubeConfig }),
      };
    }
    const hmacFile = process.env.AUDIT_HMAC_KEY_FILE;
    const signingKey = flags['signing-key'] as string | undefined;
    const store = await startAuditStore({
      databaseUrl: process.env.DATABASE_URL || undefined,
      dataDir: flags['data-dir'] as string | undefined,
      auth,
      authz: flags.namespace ? { namespace: flags.namespace as string } : undefined,
      hashKey: hmacFile ? readFileSync(hmacFile) : undefined,
      signingKeyPem: signingKey ? readFileSync(signingKey) : undefined,
      ...listenOpts,
    });
    console.log(`audit store listening on ${store.url}`);
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
