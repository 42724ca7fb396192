import { readFile } from 'node:fs/promises';
import {
  UsageError,
  createLogger,
  listenOptionsFromEnv,
  parseDatabaseUrl,
  parseFlags,
  parsePort,
  waitForShutdown,
  type Command,
  type FlagSpec,
} from '@precinct/runtime';
import {
  createTokenReviewVerifier,
  loadKubeConfig,
  watchPods,
  watchServiceAccounts,
  type ObjectWatch,
} from '@precinct/kube';
import type { TokenVerifier } from '../attestation.js';
import { startIdentityServer } from '../server.js';
import { DEFAULT_DATA_DIR, keyType, parseDuration } from './values.js';

const serverFlags: Record<string, FlagSpec> = {
  'trust-domain': {
    type: 'string',
    description: 'trust domain this server issues for',
    default: 'precinct.local',
    placeholder: 'NAME',
  },
  'data-dir': {
    type: 'string',
    description: 'keys (0600), database, admin token, sockets',
    default: DEFAULT_DATA_DIR,
    placeholder: 'DIR',
  },
  'database-url': {
    type: 'string',
    description: 'PostgreSQL URL instead of the embedded PGlite (env DATABASE_URL)',
    placeholder: 'URL',
  },
  'socket-path': {
    type: 'string',
    description: 'shared Workload API socket (default <data-dir>/public/api.sock)',
    placeholder: 'PATH',
  },
  host: {
    type: 'string',
    description: 'listen address of all ports (env HOST)',
    default: '::',
    placeholder: 'ADDR',
  },
  port: {
    type: 'string',
    description: 'admin and attestation API port (env PORT)',
    default: '8090',
    placeholder: 'PORT',
  },
  'oidc-port': {
    type: 'string',
    description: 'OIDC discovery provider port',
    default: '8091',
    placeholder: 'PORT',
  },
  'health-port': {
    type: 'string',
    description: '/health, /ready, /metrics port',
    default: '8092',
    placeholder: 'PORT',
  },
  'advertise-host': {
    type: 'string',
    description:
      'host other processes dial (OIDC issuer, admin URL); default localhost for a wildcard --host, else --host',
    placeholder: 'HOST',
  },
  attestor: {
    type: 'string',
    description: 'kube (TokenReview via KUBECONFIG or in-cluster) or none',
    default: 'kube',
    placeholder: 'NAME',
  },
  audience: {
    type: 'string',
    description: 'audience workloads\u2019 ServiceAccount tokens must carry',
    default: 'precinct',
    placeholder: 'AUD',
  },
  'ca-ttl': {
    type: 'string',
    description: 'CA and JWT key lifetime',
    default: '24h',
    placeholder: 'DURATION',
  },
  'ca-key-type': {
    type: 'string',
    description: 'ec-p256 or rsa-2048',
    default: 'ec-p256',
    placeholder: 'TYPE',
  },
  'bundle-endpoint-port': {
    type: 'string',
    description: 'serve the SPIFFE bundle endpoint (https_web) on this port',
    placeholder: 'PORT',
  },
  'bundle-endpoint-cert': {
    type: 'string',
    description: 'PEM certificate (chain) of the bundle endpoint',
    placeholder: 'FILE',
  },
  'bundle-endpoint-key': {
    type: 'string',
    description: 'PEM private key of the bundle endpoint',
    placeholder: 'FILE',
  },
  'federate-with': {
    type: 'string',
    multiple: true,
    description: 'TD=https://bundle-endpoint-url, repeatable',
    placeholder: 'TD=URL',
  },
  'federation-ca': {
    type: 'string',
    description: 'extra CA (PEM) for peers\u2019 bundle endpoint certificates',
    placeholder: 'FILE',
  },
  'oidc-cert': {
    type: 'string',
    description: 'PEM certificate: serve OIDC discovery over HTTPS (https issuer)',
    placeholder: 'FILE',
  },
  'oidc-key': {
    type: 'string',
    description: 'PEM private key of --oidc-cert',
    placeholder: 'FILE',
  },
  'upstream-ca-cert': {
    type: 'string',
    description: 'self-signed root (PEM) that signs this server\u2019s CAs as intermediates',
    placeholder: 'FILE',
  },
  'upstream-ca-key': {
    type: 'string',
    description: 'private key (PEM) of --upstream-ca-cert',
    placeholder: 'FILE',
  },
  'max-binding-ttl': {
    type: 'string',
    description:
      'longest life of a workload binding, whatever its token\u2019s exp; re-attesting extends it',
    default: '1h',
    placeholder: 'DURATION',
  },
  'watch-stale-after': {
    type: 'string',
    description: 'suspend every binding when the ServiceAccount watch has been down this long',
    default: '30s',
    placeholder: 'DURATION',
  },
  'workload-key-type': {
    type: 'string',
    description: 'ec-p256 or rsa-2048',
    default: 'ec-p256',
    placeholder: 'TYPE',
  },
};

function kubeAttestor(
  audience: string,
  staleAfterMs: number,
  logger: ReturnType<typeof createLogger>,
): { verifier: TokenVerifier; serviceAccounts: ObjectWatch; pods: ObjectWatch } {
  const kubeConfig = loadKubeConfig();
  const watch = { kubeConfig, staleAfterMs, logger };
  return {
    // TokenReview: the API server checks signature, expiry, audience and that the
    // ServiceAccount (and the pod the token is bound to) still exist, at attestation time.
    verifier: createTokenReviewVerifier({ kubeConfig, audiences: [audience] }),
    // The watches carry that on: a deletion ends the bindings resting on it.
    serviceAccounts: watchServiceAccounts(watch),
    pods: watchPods(watch),
  };
}

/** `precinct identity-server`: runs the issuer until SIGINT/SIGTERM. */
export const identityServerCommand: Command = {
  name: 'identity-server',
  summary: 'a local SPIFFE issuer with the standard Workload API',
  async run(argv) {
    const f = parseFlags('identity-server', identityServerCommand.summary, argv, serverFlags);
    if (!f) return;
    const main = listenOptionsFromEnv({
      host: f.host as string,
      port: parsePort(f.port as string, '--port'),
    });
    const attestor = f.attestor as string;
    if (attestor !== 'kube' && attestor !== 'none')
      throw new UsageError('--attestor must be kube or none');
    const audience = f.audience as string;
    if (!audience) throw new UsageError('--audience must not be empty');
    const ttl = parseDuration(f['ca-ttl'] as string, 'ca-ttl') * 1000;
    const maxBindingMs = parseDuration(f['max-binding-ttl'] as string, 'max-binding-ttl') * 1000;
    if (maxBindingMs <= 0) throw new UsageError('--max-binding-ttl must be positive');
    const staleAfterMs =
      parseDuration(f['watch-stale-after'] as string, 'watch-stale-after') * 1000;
    if (staleAfterMs <= 0) throw new UsageError('--watch-stale-after must be positive');
    const logger = createLogger('identity-server');
    const kube = attestor === 'kube' ? kubeAttestor(audience, staleAfterMs, logger) : undefined;
    const verifier = kube?.verifier;
    const closeWatches = () => {
      kube?.serviceAccounts.close();
      kube?.pods.close();
    };
    const rawDbUrl = (f['database-url'] as string | undefined) ?? process.env.DATABASE_URL;
    const databaseUrl = rawDbUrl
      ? parseDatabaseUrl(rawDbUrl, f['database-url'] ? '--database-url' : 'DATABASE_URL')
      : undefined;
    const beFlags = ['bundle-endpoint-port', 'bundle-endpoint-cert', 'bundle-endpoint-key'];
    const beGiven = beFlags.filter((n) => f[n] !== undefined);
    if (beGiven.length > 0 && beGiven.length < 3) {
      throw new UsageError(
        `--${beFlags.join(', --')} go together (got only --${beGiven.join(', --')})`,
      );
    }
    const bundleEndpoint =
      beGiven.length === 3
        ? {
            listen: {
              host: main.host,
              port: parsePort(f['bundle-endpoint-port'] as string, '--bundle-endpoint-port'),
            },
            certPem: await readFile(f['bundle-endpoint-cert'] as string, 'utf8'),
            keyPem: await readFile(f['bundle-endpoint-key'] as string, 'utf8'),
          }
        : undefined;
    if ((f['oidc-cert'] === undefined) !== (f['oidc-key'] === undefined)) {
      throw new UsageError('--oidc-cert and --oidc-key go together');
    }
    const oidcTls = f['oidc-cert']
      ? {
          certPem: await readFile(f['oidc-cert'] as string, 'utf8'),
          keyPem: await readFile(f['oidc-key'] as string, 'utf8'),
        }
      : undefined;
    if ((f['upstream-ca-cert'] === undefined) !== (f['upstream-ca-key'] === undefined)) {
      throw new UsageError('--upstream-ca-cert and --upstream-ca-key go together');
    }
    const upstreamCa = f['upstream-ca-cert']
      ? {
          certPem: await readFile(f['upstream-ca-cert'] as string, 'utf8'),
          keyPem: await readFile(f['upstream-ca-key'] as string, 'utf8'),
        }
      : undefined;
    const federationCa = f['federation-ca']
      ? await readFile(f['federation-ca'] as string, 'utf8')
      : undefined;
    const federation = ((f['federate-with'] as string[] | undefined) ?? []).map((v) => {
      const i = v.indexOf('=');
      if (i <= 0 || !v.slice(i + 1).startsWith('https://')) {
        throw new UsageError(`--federate-with must be TD=https://URL, got "${v}"`);
      }
      return {
        trustDomain: v.slice(0, i),
        url: v.slice(i + 1),
        ...(federationCa ? { caPem: federationCa } : {}),
      };
    });
    kube?.pods.once('unsupported', () =>
      logger.warn(
        'the Kubernetes API serves no pods: pod-bound bindings end with their ServiceAccount only',
      ),
    );
    const server = await startIdentityServer({
      trustDomain: f['trust-domain'] as string,
      dataDir: f['data-dir'] as string,
      ...(databaseUrl ? { databaseUrl } : {}),
      ...(f['socket-path'] ? { socketPath: f['socket-path'] as string } : {}),
      admin: main,
      oidc: { host: main.host, port: parsePort(f['oidc-port'] as string, '--oidc-port') },
      health: { host: main.host, port: parsePort(f['health-port'] as string, '--health-port') },
      ...(f['advertise-host'] !== undefined
        ? { advertiseHost: f['advertise-host'] as string }
        : {}),
      caTtlMs: ttl,
      jwtKeyTtlMs: ttl,
      caKeyType: keyType(f['ca-key-type'] as string, 'ca-key-type'),
      workloadKeyType: keyType(f['workload-key-type'] as string, 'workload-key-type'),
      ...(verifier ? { verifier, attestAudience: audience } : {}),
      ...(kube ? { revocation: { serviceAccounts: kube.serviceAccounts, pods: kube.pods } } : {}),
      maxBindingMs,
      ...(bundleEndpoint ? { bundleEndpoint } : {}),
      ...(upstreamCa ? { upstreamCa } : {}),
      ...(oidcTls ? { oidcTls } : {}),
      federation,
      logger,
    }).catch((err: unknown) => {
      closeWatches();
      throw err;
    });
    console.log(`trust domain   spiffe://${server.trustDomain}`);
    console.log(
      `workload API   ${server.workloadApiAddress} (attest first: POST ${server.adminUrl}/v1/attest)`,
    );
    console.log(`admin API      ${server.adminUrl}`);
    console.log(`OIDC issuer    ${server.issuer}`);
    console.log(`health         ${server.healthUrl}`);
    if (server.bundleEndpointUrl) console.log(`bundle endpoint ${server.bundleEndpointUrl}`);
    await waitForShutdown();
    verifier?.close?.();
    await server.close();
    closeWatches();
  },
};
