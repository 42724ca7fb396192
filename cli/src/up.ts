import { resolve } from 'node:path';
import { parseFlags, waitForShutdown, type Command } from '@precinct/runtime';
import { startKubeDev } from '@precinct/kube-dev';
import { startIdentityServer } from '@precinct/identity-server';
import { startAuditStore } from '@precinct/audit-store';
import {
  cachingVerifier,
  createSubjectAccessReviewAuthorizer,
  createTokenReviewVerifier,
  loadKubeConfig,
} from '@precinct/kube';
import { generateKeyPairSync } from 'node:crypto';
import { createDelegationVerifier } from '@precinct/delegation';
import {
  LOCAL_AUDIT_AUDIENCE,
  LOCAL_DELEGATION_ISSUER,
  localDelegationKeys,
} from './delegation.js';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';

/** The trust domain of the local platform. */
const TRUST_DOMAIN = 'precinct.local';

const SUMMARY = 'Start the whole local platform and print where everything is.';

export const upCommand: Command = {
  name: 'up',
  summary: SUMMARY,
  async run(argv) {
    const flags = parseFlags('up', SUMMARY, argv, {
      'data-dir': {
        type: 'string',
        description: 'where state lives between runs',
        default: '.precinct',
        placeholder: 'DIR',
      },
      'advertise-host': {
        type: 'string',
        description: 'host other processes (containers, namespaces) use to reach the services',
        default: 'localhost',
        placeholder: 'HOST',
      },
      'audit-port': {
        type: 'string',
        description: 'port of the audit store (0 = any free port)',
        default: '8080',
        placeholder: 'PORT',
        kind: 'port',
      },
      'kube-port': {
        type: 'string',
        description: 'port of the local Kubernetes auth API (0 = any free port)',
        default: '6443',
        placeholder: 'PORT',
        kind: 'port',
      },
    });
    if (!flags) return;
    const dataDir = resolve(String(flags['data-dir']));
    const kube = await startKubeDev({
      listen: { host: '::', port: Number(flags['kube-port']), setting: '--kube-port' },
      advertiseHost: String(flags['advertise-host']),
      dataDir: resolve(dataDir, 'kube-dev'),
      kubeconfigPath: resolve(dataDir, 'kubeconfig'),
    });
    const advertiseHost = String(flags['advertise-host']);
    let identity;
    let audit;
    try {
      // Workloads attest with a projected ServiceAccount token (audience `precinct`), which
      // the identity server checks by TokenReview against kube-dev.
      const kubeConfig = loadKubeConfig({ KUBECONFIG: kube.kubeconfigPath });
      identity = await startIdentityServer({
        trustDomain: TRUST_DOMAIN,
        dataDir: resolve(dataDir, 'identity-server'),
        advertiseHost,
        verifier: cachingVerifier(
          createTokenReviewVerifier({ kubeConfig, audiences: ['precinct'] }),
        ),
      });
      // One entry per ServiceAccount that `up` creates or that every namespace has.
      const wanted = `spiffe://${TRUST_DOMAIN}/ns/default/sa/default`;
      if (!identity.entries.list().some((e) => e.spiffeId === wanted)) {
        await identity.entries.create({
          spiffeId: wanted,
          selectors: ['k8s:ns:default', 'k8s:sa:default'],
        });
      }
      // The audit store on embedded PGlite, writers authenticated by TokenReview and
      // authorized by SubjectAccessReview against kube-dev, exports signed with a key kept
      // in the data dir so they verify across restarts.
      const auditDir = resolve(dataDir, 'audit-store');
      mkdirSync(auditDir, { recursive: true, mode: 0o700 });
      const keyPath = resolve(auditDir, 'export-signing-key.pem');
      if (!existsSync(keyPath)) {
        const { privateKey } = generateKeyPairSync('ed25519');
        writeFileSync(keyPath, privateKey.export({ format: 'pem', type: 'pkcs8' }), {
          mode: 0o600,
        });
      }
      // Delegation tokens from the local issuer (`precinct delegate`) become on_behalf_of.
      const delegationKeys = await localDelegationKeys(dataDir, true);
      audit = await startAuditStore({
        dataDir: resolve(auditDir, 'db'),
        port: Number(flags['audit-port']),
        advertiseHost,
        signingKeyPem: readFileSync(keyPath),
        auth: {
          verifier: cachingVerifier(createTokenReviewVerifier({ kubeConfig })),
          authorizer: createSubjectAccessReviewAuthorizer({ kubeConfig }),
        },
        delegation: createDelegationVerifier({
          issuer: LOCAL_DELEGATION_ISSUER,
          audience: LOCAL_AUDIT_AUDIENCE,
          jwks: delegationKeys.jwks,
        }),
      });
    } catch (err) {
      await identity?.close();
      await kube.close();
      throw err;
    }
    console.log(
      [
        'Precinct is up.',
        '',
        `  kube-dev          ${kube.url}`,
        `  kubeconfig        ${kube.kubeconfigPath}`,
        `  identity-server   trust domain ${TRUST_DOMAIN}`,
        `    Workload API    ${identity.workloadApiAddress} (attest first: POST ${identity.adminUrl}/v1/attest)`,
        `    admin API       ${identity.adminUrl} (token in ${resolve(dataDir, 'identity-server', 'admin.token')})`,
        `    OIDC issuer     ${identity.issuer}`,
        `    health          ${identity.healthUrl}`,
        `  audit-store       ${audit.url} (PGlite in ${resolve(dataDir, 'audit-store', 'db')})`,
        `  delegation        issuer ${LOCAL_DELEGATION_ISSUER} (precinct delegate --data-dir ${dataDir} --subject alice --actor system:serviceaccount:default:default)`,
        '',
        'Try:',
        `  export KUBECONFIG=${kube.kubeconfigPath}`,
        '  kubectl create token default',
        '  kubectl auth can-i get pods --as=system:serviceaccount:default:default',
        '',
        'Ctrl-C stops everything.',
      ].join('\n'),
    );
    await waitForShutdown();
    await audit.close();
    await identity.close();
    await kube.close();
  },
};
