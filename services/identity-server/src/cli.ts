import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  UsageError,
  createLogger,
  listenOptionsFromEnv,
  parseFlags,
  waitForShutdown,
  type Command,
  type FlagSpec,
  parseDatabaseUrl,
} from '@precinct/runtime';
import {
  createTokenReviewVerifier,
  loadKubeConfig,
  watchPods,
  watchServiceAccounts,
  type ObjectWatch,
} from '@precinct/kube';
import type { TokenVerifier } from './attestation.js';
import type { KeyType } from './authority.js';
import type { Entry, EntryInput } from './entries.js';
import { startIdentityServer } from './server.js';

const DEFAULT_DATA_DIR = '.precinct/identity-server';

/** `30`, `30s`, `5m`, `1h`, `2d` to seconds; anything else is a usage error. */
export function parseDuration(v: string, flag: string): number {
  const m = /^(\d{1,9})(s|m|h|d)?$/.exec(v.trim());
  if (!m)
    throw new UsageError(`--${flag} must be seconds or a duration like 30s, 5m, 1h, got "${v}"`);
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[(m[2] ?? 's') as 's']!;
}

function parsePort(v: string, flag: string): number {
  if (!/^\d{1,5}$/.test(v) || Number(v) > 65535)
    throw new UsageError(`--${flag} must be a port from 0 to 65535`);
  return Number(v);
}

function keyType(v: string, flag: string): KeyType {
  if (v !== 'ec-p256' && v !== 'rsa-2048')
    throw new UsageError(`--${flag} must be ec-p256 or rsa-2048`);
  return v;
}

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
      port: parsePort(f.port as string, 'port'),
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
              port: parsePort(f['bundle-endpoint-port'] as string, 'bundle-endpoint-port'),
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
      oidc: { host: main.host, port: parsePort(f['oidc-port'] as string, 'oidc-port') },
      health: { host: main.host, port: parsePort(f['health-port'] as string, 'health-port') },
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

// SPIRE's flag names (`-spiffeID`, `-x509SVIDTTL`) and their kebab-case forms.
const SPIRE_NAMES: Record<string, string> = {
  spiffeID: 'spiffe-id',
  entryID: 'entry-id',
  id: 'entry-id',
  x509SVIDTTL: 'x509-svid-ttl',
  jwtSVIDTTL: 'jwt-svid-ttl',
  federatesWith: 'federates-with',
  dnsName: 'dns',
  serverURL: 'admin-url',
};

/** Rewrites `-spiffeID x`, `--spiffeID=x` and `-dns x` to the kebab-case long flags. */
export function normalizeEntryFlags(argv: string[]): string[] {
  return argv.map((a) => {
    const m = /^--?([A-Za-z][A-Za-z0-9-]*)(=.*)?$/.exec(a);
    if (!m) return a;
    const name = SPIRE_NAMES[m[1]!] ?? m[1]!.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();
    return `--${name}${m[2] ?? ''}`;
  });
}

const entryFlags: Record<string, FlagSpec> = {
  'entry-id': { type: 'string', description: 'entry ID (show, update, delete)', placeholder: 'ID' },
  'spiffe-id': { type: 'string', description: 'SPIFFE ID the entry issues', placeholder: 'ID' },
  selector: {
    type: 'string',
    multiple: true,
    description: 'type:value, repeatable; all must match (k8s:ns:default)',
    placeholder: 'SEL',
  },
  'x509-svid-ttl': {
    type: 'string',
    description: 'X.509-SVID lifetime (default 1h)',
    placeholder: 'DURATION',
  },
  'jwt-svid-ttl': {
    type: 'string',
    description: 'JWT-SVID lifetime (default 5m)',
    placeholder: 'DURATION',
  },
  dns: {
    type: 'string',
    multiple: true,
    description: 'DNS name for the X.509-SVID, repeatable',
    placeholder: 'NAME',
  },
  hint: { type: 'string', description: 'label telling SVIDs apart', placeholder: 'TEXT' },
  'federates-with': {
    type: 'string',
    multiple: true,
    description: 'trust domain, repeatable',
    placeholder: 'TD',
  },
  admin: { type: 'boolean', description: 'mark the entry as admin' },
  'admin-url': {
    type: 'string',
    description: 'admin API URL (default: <data-dir>/admin.url)',
    placeholder: 'URL',
  },
  'token-file': {
    type: 'string',
    description: 'admin token file (default: <data-dir>/admin.token)',
    placeholder: 'PATH',
  },
  'data-dir': {
    type: 'string',
    description: 'the identity server\u2019s data dir',
    default: DEFAULT_DATA_DIR,
    placeholder: 'DIR',
  },
  output: { type: 'string', description: 'text or json', default: 'text', placeholder: 'FORMAT' },
};

/** Where `precinct entry` prints; injectable for tests. */
export interface EntryIo {
  out(line: string): void;
  fetch?: typeof fetch;
}

function formatEntry(e: Entry): string {
  return [
    `Entry ID         : ${e.id}`,
    `SPIFFE ID        : ${e.spiffeId}`,
    ...e.selectors.map((s) => `Selector         : ${s.type}:${s.value}`),
    `X509-SVID TTL    : ${e.x509SvidTtl}`,
    `JWT-SVID TTL     : ${e.jwtSvidTtl}`,
    ...e.dnsNames.map((d) => `DNS name         : ${d}`),
    ...e.federatesWith.map((t) => `FederatesWith    : ${t}`),
    ...(e.hint ? [`Hint             : ${e.hint}`] : []),
    ...(e.admin ? ['Admin            : true'] : []),
    `Revision         : ${e.revision}`,
  ].join('\n');
}

const ENTRY_SUMMARIES: Record<string, string> = {
  create: 'Create a registration entry: a SPIFFE ID for workloads that match every selector.',
  show: 'Show one entry by -entryID, or the entries matching -spiffeID and/or -selector.',
  list: 'List every registration entry.',
  update: 'Change fields of the entry -entryID (only the flags given change).',
  delete: 'Delete the entry -entryID; workloads it matched stop receiving its SVIDs.',
};

/** `precinct entry create|show|list|update|delete`, printing through `io`. */
export async function runEntryCli(argv: string[], io: EntryIo): Promise<void> {
  const [sub, ...rest] = argv;
  const subs = ['create', 'show', 'list', 'update', 'delete'];
  if (!sub || sub === '--help' || sub === '-h') {
    io.out(
      [
        `Usage: precinct entry <${subs.join('|')}> [flags]`,
        '',
        "Manage the identity server's registration entries through its admin API.",
        '',
        'Subcommands:',
        ...subs.map((n) => `  ${n.padEnd(6)}  ${ENTRY_SUMMARIES[n]}`),
        '',
        'Run `precinct entry <subcommand> --help` for its flags.',
      ].join('\n'),
    );
    return;
  }
  if (!subs.includes(sub))
    throw new UsageError(`unknown subcommand "${sub}" (want ${subs.join(', ')})`);
  const f = parseFlags(
    `entry ${sub}`,
    ENTRY_SUMMARIES[sub]!,
    normalizeEntryFlags(rest),
    entryFlags,
  );
  if (!f) return;
  const output = f.output as string;
  if (output !== 'text' && output !== 'json') throw new UsageError('--output must be text or json');
  const dataDir = f['data-dir'] as string;
  const url = (
    (f['admin-url'] as string | undefined) ??
    (await readFile(join(dataDir, 'admin.url'), 'utf8').catch(() => ''))
  ).trim();
  if (!url)
    throw new UsageError(
      `no --admin-url and no ${join(dataDir, 'admin.url')}: is the identity server running?`,
    );
  const tokenFile = (f['token-file'] as string | undefined) ?? join(dataDir, 'admin.token');
  let token: string;
  try {
    token = (await readFile(tokenFile, 'utf8')).trim();
  } catch {
    throw new UsageError(`cannot read the admin token file ${tokenFile}`);
  }
  const id = f['entry-id'] as string | undefined;
  const filterOnly =
    sub === 'show' && !id && (f['spiffe-id'] !== undefined || f.selector !== undefined);
  if (sub !== 'create' && sub !== 'list' && !id && !filterOnly) {
    throw new UsageError(
      `entry ${sub} needs -entryID${sub === 'show' ? ', -spiffeID or -selector' : ''}`,
    );
  }

  const body: EntryInput & Record<string, unknown> = {};
  if (f['spiffe-id'] !== undefined) body.spiffeId = f['spiffe-id'] as string;
  if (f.selector !== undefined) body.selectors = f.selector as unknown as EntryInput['selectors'];
  if (f['x509-svid-ttl'] !== undefined)
    body.x509SvidTtl = parseDuration(f['x509-svid-ttl'] as string, 'x509SVIDTTL');
  if (f['jwt-svid-ttl'] !== undefined)
    body.jwtSvidTtl = parseDuration(f['jwt-svid-ttl'] as string, 'jwtSVIDTTL');
  if (f.dns !== undefined) body.dnsNames = f.dns as string[];
  if (f.hint !== undefined) body.hint = f.hint as string;
  if (f['federates-with'] !== undefined) body.federatesWith = f['federates-with'] as string[];
  if (f.admin) body.admin = true;
  if (sub === 'create' && (!body.spiffeId || !body.selectors)) {
    throw new UsageError('entry create needs -spiffeID and at least one -selector');
  }

  const call = async (method: string, path: string, payload?: unknown) => {
    let res: Response;
    try {
      res = await (io.fetch ?? fetch)(new URL(path, url), {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(payload !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(payload !== undefined ? { body: JSON.stringify(payload) } : {}),
      });
    } catch (err) {
      // undici says only "fetch failed"; the reason is in its cause (ECONNREFUSED, ...).
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const why =
        cause?.code === 'ECONNREFUSED'
          ? 'connection refused'
          : (cause?.code ?? cause?.message ?? String(err));
      throw new Error(
        `cannot reach the identity server's admin API at ${url} (${why}): is it running? ` +
          `Start it with \`precinct identity-server\` or \`precinct up\`, or pass --admin-url.`,
      );
    }
    const json = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    if (!res.ok) {
      const detail =
        typeof json.detail === 'string' ? json.detail : String(json.title ?? res.statusText);
      throw new Error(`${detail} (HTTP ${res.status})`);
    }
    return json;
  };
  const path = id ? `/v1/entries/${encodeURIComponent(id)}` : '/v1/entries';
  let result: Record<string, unknown>;
  switch (sub) {
    case 'create':
      result = await call('POST', '/v1/entries', body);
      break;
    case 'update':
      if (Object.keys(body).length === 0)
        throw new UsageError('entry update needs at least one field to change');
      result = await call('PATCH', path, body);
      break;
    case 'delete':
      result = await call('DELETE', path);
      break;
    case 'show':
      if (filterOnly) {
        // SPIRE's `entry show -spiffeID X -selector Y`: entries with that ID and all those selectors.
        const all = ((await call('GET', '/v1/entries')).entries as Entry[]) ?? [];
        const want = (body.selectors as string[] | undefined) ?? [];
        const entries = all.filter(
          (e) =>
            (!body.spiffeId || e.spiffeId === body.spiffeId) &&
            want.every((w) => e.selectors.some((s) => `${s.type}:${s.value}` === w)),
        );
        if (output === 'json') return io.out(JSON.stringify({ entries }, null, 2));
        return io.out(
          entries.length === 0
            ? 'Found 0 entries'
            : `Found ${entries.length} entries\n\n${entries.map(formatEntry).join('\n\n')}`,
        );
      }
      result = await call('GET', path);
      break;
    default:
      result = await call('GET', '/v1/entries');
  }
  if (output === 'json') return io.out(JSON.stringify(result, null, 2));
  if (sub === 'list') {
    const list = (result.entries as Entry[]) ?? [];
    io.out(
      list.length === 0
        ? 'Found 0 entries'
        : `Found ${list.length} entries\n\n${list.map(formatEntry).join('\n\n')}`,
    );
  } else {
    io.out(
      `${sub === 'delete' ? 'Deleted entry' : 'Entry'}\n${formatEntry(result as unknown as Entry)}`,
    );
  }
}

/** `precinct entry`: registration entries through the identity server's admin API. */
export const entryCommand: Command = {
  name: 'entry',
  summary: 'create, show, list, update and delete registration entries',
  run: (argv) => runEntryCli(argv, { out: (l) => console.log(l) }),
};
