// `precinct demo <service>`: each part of the agent-delegation demo as its own process, the way
// a cluster runs them (one pod per service, the Helm chart's demo pods). Every process gets its
// SVID from the Workload API, serves mTLS on one port and /health, /ready, /metrics on a plain
// one, and knows each peer by URL *and* SPIFFE ID: a peer with another certificate is refused.
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import {
  DEMO_PORTS,
  agentSpiffeId,
  demoPolicyData,
  startAgentService,
  startDocumentService,
  startPolicyService,
  startUserService,
  type ServiceHandle,
} from '@precinct/demo';
import { startDashboard } from '@precinct/dashboard';
import { opaServerPolicy, wasmPolicy, type PolicyData } from '@precinct/policy';
import {
  UsageError,
  createLogger,
  listenOptionsFromEnv,
  parseFlags,
  parseHttpUrl,
  parseListen,
  waitForShutdown,
  type Command,
  type FlagSpec,
  type ParsedFlags,
} from '@precinct/runtime';
import { SpiffeId } from '@precinct/spiffe';
import { X509Source } from '@precinct/spiffe/workloadapi';
import { createDemoIdp } from './demo.js';

type Service =
  'user-service' | 'agent-service' | 'document-service' | 'policy-service' | 'dashboard';

/** A peer flag pair: `--<name> URL` and `--<name>-id SPIFFE_ID`. */
interface PeerSpec {
  name: string;
  what: string;
  /** The dashboard is plain HTTP towards browsers, but every peer of a service is mTLS. */
  optional?: boolean;
}

interface SubSpec {
  summary: string;
  port: number;
  healthPort: number;
  peers: PeerSpec[];
  /** `--caller ID` (repeatable): who may call this service. Absent for the dashboard. */
  callers?: string;
  flags?: Record<string, FlagSpec>;
  /** Flags of `flags` that must be given. */
  required?: string[];
  /** Serves browsers over plain HTTP (the dashboard) instead of mTLS. */
  web?: boolean;
  help: string;
}

const TOKEN: PeerSpec = { name: 'token-service', what: 'the token service (Transaction Tokens)' };

const SUBCOMMANDS: Record<Service, SubSpec> = {
  'user-service': {
    summary: 'the demo user service: people and direct access (mTLS)',
    port: DEMO_PORTS.userService,
    healthPort: DEMO_PORTS.userServiceHealth,
    peers: [TOKEN, { name: 'document-service', what: 'the document service' }],
    callers: 'the dashboard',
    help: "Forwards a person's Transaction Token, unmodified, to the document service.",
  },
  'agent-service': {
    summary: 'the demo agent service: AI agents acting for people (mTLS)',
    port: DEMO_PORTS.agentService,
    healthPort: DEMO_PORTS.agentServiceHealth,
    peers: [TOKEN, { name: 'document-service', what: 'the document service' }],
    callers: 'the dashboard',
    help: [
      'The workload holds its own SVID and one per agent (spiffe://<td>/agent/<name>, the policy',
      "data's agents); it acts as an agent by presenting that agent's SVID. Without --spiffe-id",
      'its own SVID is the first one whose path is not /agent/...',
    ].join('\n'),
  },
  'document-service': {
    summary: 'the demo document service: releases a document only on a policy allow (mTLS)',
    port: DEMO_PORTS.documentService,
    healthPort: DEMO_PORTS.documentServiceHealth,
    peers: [
      TOKEN,
      { name: 'policy-service', what: 'the policy service' },
      { name: 'audit-store', what: 'the audit store (its SPIFFE mTLS mode)', optional: true },
    ],
    required: ['user-service-id'],
    flags: {
      'user-service-id': {
        type: 'string',
        description:
          'SPIFFE ID of the user service, the one caller acting for a person directly (required)',
        placeholder: 'SPIFFE_ID',
      },
      'agent-id': {
        type: 'string',
        multiple: true,
        description:
          "an agent's SPIFFE ID that may call, repeatable (default: the policy data's agents)",
        placeholder: 'SPIFFE_ID',
      },
    },
    help: 'Every decision (allow and deny) goes to the audit store when --audit-store is given.',
  },
  'policy-service': {
    summary: 'the demo policy service: the OPA Data API for the one decision (mTLS)',
    port: DEMO_PORTS.policyService,
    healthPort: DEMO_PORTS.policyServiceHealth,
    peers: [],
    callers: 'the document service',
    flags: {
      'opa-url': {
        type: 'string',
        description:
          'decide on this OPA server (env OPA_URL); default: the Rego as Wasm in-process',
        placeholder: 'URL',
      },
    },
    help: "With an OPA server, load the demo's policy and data (trust domain included) into it.",
  },
  dashboard: {
    summary:
      'the demo dashboard: web UI and its API (plain HTTP), people by password or an OpenID Provider',
    port: DEMO_PORTS.dashboard,
    healthPort: DEMO_PORTS.dashboardHealth,
    peers: [
      TOKEN,
      { name: 'user-service', what: 'the user service' },
      { name: 'agent-service', what: 'the agent service' },
    ],
    web: true,
    flags: {
      'oidc-issuer': {
        type: 'string',
        description: 'people sign in at this OpenID Provider instead of with demo passwords',
        placeholder: 'URL',
        conflicts: ['demo-users-from'],
      },
      'oidc-client-id': {
        type: 'string',
        description: "the dashboard's client id at the provider",
        default: 'precinct-dashboard',
        placeholder: 'ID',
      },
      'oidc-client-secret-file': {
        type: 'string',
        description: 'file holding the client secret (or env PRECINCT_OIDC_CLIENT_SECRET)',
        placeholder: 'FILE',
      },
      'oidc-username-claim': {
        type: 'string',
        description: 'the ID token or userinfo claim naming the person',
        default: 'preferred_username',
        placeholder: 'CLAIM',
      },
      'oidc-auditor-groups': {
        type: 'string',
        description:
          "members of these provider groups (comma-separated, 'groups' claim) are auditors",
        placeholder: 'GROUPS',
      },
      auditors: {
        type: 'string',
        description:
          'people who may read the audit view (comma-separated; default: the admin department)',
        placeholder: 'NAMES',
      },
      'public-url': {
        type: 'string',
        description: "the dashboard's URL as browsers reach it (the OIDC redirect URI's base)",
        placeholder: 'URL',
      },
      'demo-users-file': {
        type: 'string',
        description: "the demo people's generated passwords (JSON, created 0600 when missing)",
        default: 'demo-users.json',
        placeholder: 'FILE',
      },
      'demo-users-from': {
        type: 'string',
        description:
          'copy the passwords from this JSON file (e.g. a mounted Secret) to --demo-users-file first',
        placeholder: 'FILE',
      },
      'idp-issuer': {
        type: 'string',
        description:
          "`iss` of the ID tokens the dashboard mints for people (the token service's --oidc-issuer)",
        default: 'https://dashboard.precinct.local',
        placeholder: 'URL',
      },
      'idp-audience': {
        type: 'string',
        description: "`aud` of those ID tokens (the token service's --oidc-client-id)",
        default: 'precinct-token-service',
        placeholder: 'ID',
      },
      'idp-jwks-out': {
        type: 'string',
        description: "write the ID tokens' public keys here (the token service's --oidc-jwks)",
        placeholder: 'FILE',
      },
      status: {
        type: 'string',
        multiple: true,
        description: 'NAME=URL: a health URL shown by /api/status, repeatable',
        placeholder: 'NAME=URL',
      },
    },
    help: [
      'People log in with the generated demo passwords; the dashboard then proves them to the',
      'token service with a short-lived ES256 ID token signed by a key held in memory (a new key',
      'each start: --idp-jwks-out publishes its public half).',
    ].join('\n'),
  },
};

// Aliases people type: `precinct demo policy` is the policy service.
const ALIASES: Record<string, Service> = { policy: 'policy-service' };

function commonFlags(s: SubSpec): Record<string, FlagSpec> {
  const flags: Record<string, FlagSpec> = {
    'workload-api': {
      type: 'string',
      description: 'the SPIFFE Workload API address (env SPIFFE_ENDPOINT_SOCKET)',
      placeholder: 'unix:///PATH|tcp://HOST:PORT',
    },
    'spiffe-id': {
      type: 'string',
      description: "this service's SVID when the Workload API serves several (default: the first)",
      placeholder: 'SPIFFE_ID',
    },
    'trust-domain': {
      type: 'string',
      description: "expected trust domain; start-up fails if the SVID's differs",
      placeholder: 'NAME',
    },
    listen: {
      type: 'string',
      description: `${s.web ? 'HTTP' : 'mTLS'} address (default: HOST/PORT env, else [::]:${s.port})`,
      placeholder: 'HOST:PORT',
    },
    'health-listen': {
      type: 'string',
      description: `plain-HTTP address for /health, /ready, /metrics (default [::]:${s.healthPort})`,
      placeholder: 'HOST:PORT',
    },
    'advertise-host': {
      type: 'string',
      description: 'host in the printed URLs when listening on a wildcard address',
      placeholder: 'HOST',
    },
  };
  for (const p of s.peers) {
    flags[p.name] = {
      type: 'string',
      description: `https:// URL of ${p.what}${p.optional ? '' : ' (required)'}`,
      placeholder: 'URL',
    };
    flags[`${p.name}-id`] = {
      type: 'string',
      description: `SPIFFE ID ${p.what} must present${p.optional ? '' : ' (required)'}`,
      placeholder: 'SPIFFE_ID',
    };
  }
  if (s.callers) {
    flags.caller = {
      type: 'string',
      multiple: true,
      description: `SPIFFE ID allowed to call, repeatable (required: ${s.callers})`,
      placeholder: 'SPIFFE_ID',
    };
  }
  return { ...flags, ...s.flags };
}

/** What the flags say once every problem has been reported. */
interface Config {
  address: string;
  spiffeId: string | undefined;
  trustDomain: string | undefined;
  listen: { host: string; port: number };
  health: { host: string; port: number };
  advertiseHost: string | undefined;
  peers: Record<string, { url: string; spiffeId: string } | undefined>;
  callers: string[];
  /** The dashboard's OpenID Provider, its client secret read from a file or the environment. */
  oidc: { issuer: string; clientSecret: string } | undefined;
  opaUrl: URL | undefined;
  flags: ParsedFlags;
}

/** Checks every flag of `s` and reports all problems at once (UsageError, one per line). */
function configure(s: SubSpec, flags: ParsedFlags, env: NodeJS.ProcessEnv): Config {
  const problems: string[] = [];
  const attempt = <T>(f: () => T): T | undefined => {
    try {
      return f();
    } catch (err) {
      problems.push((err as Error).message);
      return undefined;
    }
  };
  const spiffeIdFlag = (name: string, v: unknown): string | undefined => {
    if (typeof v !== 'string') return undefined;
    try {
      return SpiffeId.parse(v).toString();
    } catch {
      problems.push(`--${name} must be a SPIFFE ID (spiffe://trust-domain/path), got "${v}"`);
      return undefined;
    }
  };
  const address = (flags['workload-api'] as string | undefined) ?? env.SPIFFE_ENDPOINT_SOCKET;
  if (!address)
    problems.push('--workload-api (or SPIFFE_ENDPOINT_SOCKET) must name the Workload API');
  const td = flags['trust-domain'] as string | undefined;
  if (td !== undefined && !/^[a-z0-9._-]{1,255}$/.test(td))
    problems.push(`--trust-domain must be a trust domain name (lowercase), got "${td}"`);
  const listen = attempt(() =>
    typeof flags.listen === 'string'
      ? parseListen(flags.listen, '--listen')
      : listenOptionsFromEnv({ host: '::', port: s.port }, env),
  );
  const health = attempt(() =>
    typeof flags['health-listen'] === 'string'
      ? parseListen(flags['health-listen'], '--health-listen', listen?.host ?? '::')
      : { host: listen?.host ?? '::', port: s.healthPort },
  );
  const peers: Config['peers'] = {};
  for (const p of s.peers) {
    const url = flags[p.name] as string | undefined;
    const id = spiffeIdFlag(`${p.name}-id`, flags[`${p.name}-id`]);
    const given = flags[`${p.name}-id`] !== undefined;
    if (url === undefined) {
      if (!p.optional) problems.push(`--${p.name} and --${p.name}-id are required (${p.what})`);
      else if (given) problems.push(`--${p.name}-id needs --${p.name} as well`);
      continue;
    }
    if (!given) problems.push(`--${p.name} needs --${p.name}-id as well`);
    const u = attempt(() => parseHttpUrl(url, `--${p.name}`));
    if (u && u.protocol !== 'https:')
      problems.push(`--${p.name} must be an https:// URL (peers speak SPIFFE mTLS), got "${url}"`);
    if (id) peers[p.name] = { url: url.replace(/\/+$/, ''), spiffeId: id };
  }
  const callers: string[] = [];
  if (s.callers) {
    const given = (flags.caller as string[] | undefined) ?? [];
    if (given.length === 0) problems.push(`--caller is required (${s.callers})`);
    for (const c of given) {
      const id = spiffeIdFlag('caller', c);
      if (id) callers.push(id);
    }
  }
  let oidc: Config['oidc'];
  if (typeof flags['oidc-issuer'] === 'string') {
    const issuer = flags['oidc-issuer'];
    attempt(() => parseHttpUrl(issuer, '--oidc-issuer'));
    // Never a flag's value: it would show in `ps`.
    const file = flags['oidc-client-secret-file'];
    let secret = env.PRECINCT_OIDC_CLIENT_SECRET;
    if (typeof file === 'string') {
      try {
        secret = readFileSync(file, 'utf8').trim();
      } catch (err) {
        problems.push(
          `--oidc-client-secret-file ${file}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}`,
        );
      }
    }
    if (!secret)
      problems.push(
        '--oidc-issuer needs the client secret in --oidc-client-secret-file or PRECINCT_OIDC_CLIENT_SECRET',
      );
    else oidc = { issuer, clientSecret: secret };
  }
  if (typeof flags['public-url'] === 'string')
    attempt(() => parseHttpUrl(flags['public-url'] as string, '--public-url'));
  if (typeof flags['idp-issuer'] === 'string')
    attempt(() => parseHttpUrl(flags['idp-issuer'] as string, '--idp-issuer'));
  for (const f of s.required ?? []) if (flags[f] === undefined) problems.push(`--${f} is required`);
  for (const name of ['user-service-id', 'spiffe-id']) spiffeIdFlag(name, flags[name]);
  const opa =
    (flags['opa-url'] as string | undefined) ?? (s.flags?.['opa-url'] ? env.OPA_URL : undefined);
  const opaUrl = opa
    ? attempt(() => parseHttpUrl(opa, flags['opa-url'] ? '--opa-url' : 'OPA_URL'))
    : undefined;
  for (const a of (flags['agent-id'] as string[] | undefined) ?? []) spiffeIdFlag('agent-id', a);
  for (const st of (flags.status as string[] | undefined) ?? []) {
    const m = /^([a-z0-9-]{1,64})=(.+)$/.exec(st);
    if (!m) problems.push(`--status must be NAME=URL, got "${st}"`);
    else attempt(() => parseHttpUrl(m[2]!, `--status ${m[1]}`));
  }
  if (problems.length > 0 || !listen || !health || !address)
    throw new UsageError(problems.join('\n'));
  return {
    address,
    spiffeId: flags['spiffe-id'] as string | undefined,
    trustDomain: td,
    listen,
    health,
    advertiseHost: flags['advertise-host'] as string | undefined,
    peers,
    callers,
    oidc,
    opaUrl,
    flags,
  };
}

/** The Workload API source, this service's SVID picked by `--spiffe-id` (or the default rule). */
async function openSource(c: Config, agentWorkload: boolean): Promise<X509Source> {
  const isAgent = (id: { path: string }) => id.path.startsWith('/agent/');
  let source: X509Source;
  try {
    source = await X509Source.create({
      address: c.address,
      timeoutMs: 30_000,
      pick: (svids) =>
        c.spiffeId
          ? svids.find((x) => x.id.toString() === c.spiffeId)
          : agentWorkload
            ? (svids.find((x) => !isAgent(x.id)) ?? svids[0])
            : svids[0],
    });
  } catch (err) {
    throw new Error(
      `no X.509-SVID from the Workload API at ${c.address}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  let own: SpiffeId;
  try {
    own = source.getX509Svid().id;
  } catch (err) {
    const served = source.getX509Svids().map((x) => x.id.toString());
    await source.close();
    throw new Error(
      `the Workload API at ${c.address} serves no SVID ${c.spiffeId ?? ''} (it serves: ${served.join(', ') || 'none'})`,
      { cause: err },
    );
  }
  if (c.trustDomain && own.trustDomain.name !== c.trustDomain) {
    await source.close();
    throw new Error(
      `the SVID ${own.toString()} is of trust domain ${own.trustDomain.name}, not --trust-domain ${c.trustDomain}`,
    );
  }
  return source;
}

/**
 * Copies a passwords file (`{"alice": "...", ...}`, e.g. from a read-only Secret volume) to
 * where the dashboard keeps it (0600), so people log in with passwords the operator knows.
 */
function copyPasswords(from: string, to: string): void {
  let text: string;
  try {
    text = readFileSync(from, 'utf8');
  } catch (err) {
    throw new UsageError(
      `--demo-users-from ${from}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}`,
    );
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    // Not the parser's message: it quotes the text, and the text holds passwords.
    throw new UsageError(`--demo-users-from ${from}: not JSON`);
  }
  if (
    typeof doc !== 'object' ||
    doc === null ||
    Array.isArray(doc) ||
    !Object.values(doc).every((v) => typeof v === 'string' && v.length >= 12)
  )
    throw new UsageError(
      `--demo-users-from ${from}: must map each name to a password of at least 12 characters`,
    );
  writeFileSync(to, `${JSON.stringify(doc, null, 2)}\n`, { mode: 0o600 });
  chmodSync(to, 0o600);
}

/** A comma-separated flag as a list; undefined when not given or empty. */
function list(v: unknown): string[] | undefined {
  if (typeof v !== 'string') return undefined;
  const out = v
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
  return out.length > 0 ? out : undefined;
}

/** Peer IDs must be of this service's trust domain: another one could never pass mTLS. */
function checkTrustDomain(td: string, c: Config, extra: string[]): void {
  const foreign = [
    ...Object.values(c.peers).flatMap((p) => (p ? [p.spiffeId] : [])),
    ...c.callers,
    ...extra,
  ].filter((id) => SpiffeId.parse(id).trustDomain.name !== td);
  if (foreign.length > 0)
    throw new UsageError(
      `these SPIFFE IDs are not of this service's trust domain ${td}: ${foreign.join(', ')}`,
    );
}

async function runService(name: Service, argv: string[]): Promise<void> {
  const s = SUBCOMMANDS[name];
  const env = [
    'Environment: SPIFFE_ENDPOINT_SOCKET (the Workload API, unless --workload-api), HOST, PORT',
    `(the main address, unless --listen)${name === 'policy-service' ? ', OPA_URL (unless --opa-url)' : ''}, LOG_LEVEL.`,
    s.help,
  ].join('\n');
  const flags = parseFlags(`demo ${name}`, s.summary, argv, commonFlags(s), env);
  if (!flags) return;
  const c = configure(s, flags, process.env);
  const logger = createLogger(name, process.env.LOG_LEVEL ?? 'info');
  const source = await openSource(c, name === 'agent-service');
  const closers: Array<() => Promise<unknown>> = [() => source.close()];
  const close = async () => {
    for (const f of closers.reverse()) await f().catch(() => undefined);
  };
  try {
    const own = source.getX509Svid().id;
    const td = own.trustDomain.name;
    const data: PolicyData = demoPolicyData(td);
    const agents =
      (flags['agent-id'] as string[] | undefined) ??
      Object.keys(data.precinct.agents).map((a) => agentSpiffeId(td, a));
    checkTrustDomain(td, c, [
      ...(typeof flags['user-service-id'] === 'string' ? [flags['user-service-id']] : []),
      ...(name === 'document-service' ? agents : []),
    ]);
    const listen = {
      host: c.listen.host,
      port: c.listen.port,
      healthHost: c.health.host,
      healthPort: c.health.port,
      ...(c.advertiseHost ? { advertiseHost: c.advertiseHost } : {}),
    };
    const peer = (p: string) => c.peers[p]!;
    const base = { svidSource: source, bundleSource: source, logger, ...listen };
    let handle: ServiceHandle;
    let web: string | undefined;
    switch (name) {
      case 'policy-service': {
        const policy = c.opaUrl ? opaServerPolicy({ url: c.opaUrl }) : await wasmPolicy({ data });
        handle = await startPolicyService({ ...base, policy, callers: c.callers });
        break;
      }
      case 'document-service': {
        const userService = String(flags['user-service-id']);
        handle = await startDocumentService({
          ...base,
          trustDomain: td,
          data,
          tokenService: peer('token-service'),
          policyService: peer('policy-service'),
          userService,
          agents,
          ...(c.peers['audit-store'] ? { audit: c.peers['audit-store'] } : {}),
        });
        break;
      }
      case 'user-service':
      case 'agent-service': {
        if (name === 'agent-service') {
          const held = new Set(source.getX509Svids().map((x) => x.id.toString()));
          const missing = Object.keys(data.precinct.agents)
            .map((a) => agentSpiffeId(td, a))
            .filter((a) => !held.has(a));
          if (missing.length > 0)
            throw new Error(`the agent service's workload holds no SVID for ${missing.join(', ')}`);
        }
        const start = name === 'user-service' ? startUserService : startAgentService;
        handle = await start({
          ...base,
          trustDomain: td,
          data,
          tokenService: peer('token-service'),
          documentService: peer('document-service'),
          callers: c.callers,
        });
        break;
      }
      case 'dashboard': {
        const from = flags['demo-users-from'];
        if (typeof from === 'string') copyPasswords(from, String(flags['demo-users-file']));
        const idp = createDemoIdp({
          issuer: String(flags['idp-issuer']),
          audience: String(flags['idp-audience']),
        });
        const statusTargets = Object.fromEntries(
          ((flags.status as string[] | undefined) ?? []).map((st) => {
            const i = st.indexOf('=');
            return [st.slice(0, i), st.slice(i + 1)];
          }),
        );
        const d = await startDashboard({
          ...base,
          trustDomain: td,
          tokenService: peer('token-service'),
          userService: peer('user-service'),
          agentService: peer('agent-service'),
          idp,
          demoUsersFile: String(flags['demo-users-file']),
          people: Object.keys(data.precinct.users),
          statusTargets,
          ...(c.oidc
            ? {
                oidc: {
                  issuer: c.oidc.issuer,
                  clientId: String(flags['oidc-client-id']),
                  clientSecret: c.oidc.clientSecret,
                  usernameClaim: String(flags['oidc-username-claim']),
                  ...(list(flags['oidc-auditor-groups'])
                    ? { auditorGroups: list(flags['oidc-auditor-groups'])! }
                    : {}),
                },
              }
            : {}),
          ...(list(flags.auditors) ? { auditors: list(flags.auditors)! } : {}),
          ...(typeof flags['public-url'] === 'string' ? { publicUrl: flags['public-url'] } : {}),
        });
        handle = { url: d.url, healthUrl: d.healthUrl, spiffeId: own.toString(), close: d.close };
        web = d.url;
        const out = flags['idp-jwks-out'];
        if (typeof out === 'string') {
          // Public keys only: readable by the token service's user, like any JWKS.
          writeFileSync(out, `${JSON.stringify(idp.jwks())}\n`, { mode: 0o644 });
          chmodSync(out, 0o644);
        }
        break;
      }
    }
    closers.push(() => handle.close());
    console.log(`demo ${name} as ${handle.spiffeId} (trust domain ${td})`);
    console.log(`  ${web ? 'web   ' : 'mTLS  '}  ${handle.url}`);
    console.log(`  probes  ${handle.healthUrl}`);
    const signal = await waitForShutdown();
    logger.info({ signal }, 'stopping');
  } finally {
    await close();
  }
}

function usage(): string {
  const names = Object.keys(SUBCOMMANDS) as Service[];
  const width = Math.max(...names.map((n) => n.length));
  return [
    'Usage: precinct demo <service> [flags]',
    '',
    'Run one part of the agent-delegation demo as its own process (as the Helm chart does).',
    '',
    'Services:',
    ...names.map((n) => `  ${n.padEnd(width)}  ${SUBCOMMANDS[n].summary}`),
    '',
    'Run `precinct demo <service> --help` for its flags. `precinct up` runs them all at once.',
  ].join('\n');
}

export const demoCommand: Command = {
  name: 'demo',
  summary: 'run one demo service (user, agent, document, policy) or the dashboard on its own',
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
      console.log(usage());
      return;
    }
    const name = (ALIASES[sub] ?? sub) as Service;
    if (!Object.hasOwn(SUBCOMMANDS, name))
      throw new UsageError(
        `unknown demo service "${sub}"; one of ${Object.keys(SUBCOMMANDS).join(', ')}`,
      );
    await runService(name, rest);
  },
};
