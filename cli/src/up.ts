import { resolve } from 'node:path';
import { parseFlags, waitForShutdown, type Command } from '@precinct/runtime';
import { startKubeDev } from '@precinct/kube-dev';
import { startIdentityServer } from '@precinct/identity-server';
import { cachingVerifier, createTokenReviewVerifier, loadKubeConfig } from '@precinct/kube';

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
      'kube-port': {
        type: 'string',
        description: 'port of the local Kubernetes auth API (0 = any free port)',
        default: '6443',
        placeholder: 'PORT',
      },
    });
    if (!flags) return;
    const dataDir = resolve(String(flags['data-dir']));
    const kube = await startKubeDev({
      listen: { host: '::', port: Number(flags['kube-port']) },
      advertiseHost: String(flags['advertise-host']),
      dataDir: resolve(dataDir, 'kube-dev'),
      kubeconfigPath: resolve(dataDir, 'kubeconfig'),
    });
    const advertiseHost = String(flags['advertise-host']);
    let identity;
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
    } catch (err) {
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
    await identity.close();
    await kube.close();
  },
};
