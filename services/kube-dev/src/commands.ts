import {
  createLogger,
  listenOptionsFromEnv,
  parseFlags,
  parseListen as parseListenValue,
  UsageError,
  waitForShutdown,
  type Command,
  type ListenOptions,
} from '@precinct/runtime';
import { resolve } from 'node:path';
import { startKubeDev } from './server.js';

const SUMMARY =
  'A local Kubernetes auth API: ServiceAccounts (+watch), TokenRequest, TokenReview, SubjectAccessReview, RBAC, OIDC discovery.';

/**
 * `--listen`: `host:port`, `[v6]:port` or `:port` (host `::`), in the runtime's grammar. The
 * message keeps the wording kube-dev has always printed (its CLI test matches it).
 */
export function parseListen(s: string): { host: string; port: number } {
  try {
    return parseListenValue(s, '--listen');
  } catch {
    throw new UsageError(`--listen must be host:port (IPv6 in brackets), got "${s}"`);
  }
}

/** `precinct kube-dev`. */
export const kubeDevCommand: Command = {
  name: 'kube-dev',
  summary: SUMMARY,
  async run(argv) {
    const flags = parseFlags(
      'kube-dev',
      SUMMARY,
      argv,
      {
        listen: {
          type: 'string',
          description:
            'address to listen on; HOST and PORT override the default; port 0 picks a free one',
          placeholder: 'HOST:PORT',
        },
        'advertise-host': {
          type: 'string',
          description: 'host written into the kubeconfig and the token issuer',
          default: 'localhost',
          placeholder: 'HOST',
        },
        kubeconfig: {
          type: 'string',
          description:
            'where to write the admin kubeconfig (default: <data-dir>/kubeconfig or a temp dir)',
          placeholder: 'FILE',
        },
        'data-dir': {
          type: 'string',
          description:
            'keep objects, CA, signing key and admin token here across restarts (default: in memory)',
          placeholder: 'DIR',
        },
        'anonymous-issuer-discovery': {
          type: 'boolean',
          description:
            'let callers without credentials read OIDC discovery and the JWKS (binds system:service-account-issuer-discovery to system:unauthenticated)',
        },
      },
      'The issuer is https://<advertise-host>:<port>; OIDC discovery and the JWKS are at\n/.well-known/openid-configuration and /openid/v1/jwks, for ServiceAccounts (and anyone with --anonymous-issuer-discovery).',
    );
    if (!flags) return;
    let listen: ListenOptions;
    try {
      listen =
        typeof flags.listen === 'string'
          ? parseListen(flags.listen)
          : listenOptionsFromEnv({ host: '::', port: 6443 });
    } catch (err) {
      if (err instanceof UsageError) throw err;
      throw new UsageError(err instanceof Error ? err.message : String(err));
    }
    const kube = await startKubeDev({
      // Named in the error when the port is taken, as `precinct up` names --kube-port.
      listen: {
        ...listen,
        setting: typeof flags.listen === 'string' ? '--listen' : 'PORT or --listen',
      },
      advertiseHost: String(flags['advertise-host']),
      anonymousIssuerDiscovery: flags['anonymous-issuer-discovery'] === true,
      ...(typeof flags['data-dir'] === 'string' ? { dataDir: resolve(flags['data-dir']) } : {}),
      ...(typeof flags.kubeconfig === 'string'
        ? { kubeconfigPath: resolve(flags.kubeconfig) }
        : {}),
      logger: createLogger('kube-dev'),
    });
    console.log(
      [
        `kube-dev listening on ${kube.url} (port ${kube.port})`,
        `kubeconfig: ${kube.kubeconfigPath}`,
        `issuer: ${kube.issuer}`,
        '',
        `Try: kubectl --kubeconfig ${kube.kubeconfigPath} create token default`,
      ].join('\n'),
    );
    await waitForShutdown();
    await kube.close();
  },
};
