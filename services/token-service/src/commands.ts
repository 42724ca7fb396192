import { readFileSync } from 'node:fs';
import {
  UsageError,
  listenOptionsFromEnv,
  parseFlags,
  waitForShutdown,
  parseDuration,
  parseListen,
  type Command,
} from '@precinct/runtime';
import { X509Source } from '@precinct/spiffe/workloadapi';
import type { JWK } from 'jose';
import { MemoryConsentStore } from './consent.js';
import { TokenServiceConfigError } from './errors.js';
import type { GrantScope } from './exchange.js';
import { createOidcPersonAuthenticator } from './person.js';
import { startTokenService } from './server.js';

/** A duration flag (`300`, `5m`, ...) within [min, max] seconds; undefined when not given. */
function seconds(flag: string, value: unknown, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = parseDuration(String(value), `--${flag}`);
  if (n < min || n > max) {
    throw new UsageError(`--${flag} must be from ${min} to ${max} seconds, got "${String(value)}"`);
  }
  return n;
}

function readJson(flag: string, file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new UsageError(`--${flag} ${file}: not a readable JSON file (${(err as Error).message})`);
  }
}

/** A JWKS URL (fetched and cached) or a file holding a JWKS. */
function loadJwks(value: string): URL | { keys: JWK[] } {
  if (/^https?:\/\//i.test(value)) return new URL(value);
  const doc = readJson('oidc-jwks', value);
  if (typeof doc !== 'object' || doc === null || !Array.isArray((doc as { keys?: unknown }).keys))
    throw new UsageError(`--oidc-jwks ${value}: not a JSON Web Key Set ({"keys": [...]})`);
  return doc as { keys: JWK[] };
}

interface GrantsFile {
  people: Record<string, string[]>;
  agents: Record<string, string[]>;
  consent: Record<string, string[]>;
}

function isStringListMap(v: unknown): v is Record<string, string[]> {
  return (
    typeof v === 'object' &&
    v !== null &&
    !Array.isArray(v) &&
    Object.values(v).every((l) => Array.isArray(l) && l.every((s) => typeof s === 'string'))
  );
}

/**
 * The development policy file: which scopes each person and each agent has, and which agents
 * each person lets act for them. Production injects the policy engine's decision instead.
 */
function loadGrants(file: string): GrantsFile {
  const doc = readJson('grants', file) as Partial<GrantsFile> | null;
  const problems: string[] = [];
  for (const key of ['people', 'agents', 'consent'] as const) {
    if (!isStringListMap(doc?.[key]))
      problems.push(`--grants ${file}: "${key}" must map names to lists of strings`);
  }
  if (problems.length > 0) throw new UsageError(problems.join('\n'));
  return doc as GrantsFile;
}

/** person ∩ agent, from the grants file; unknown people and agents get nothing. */
function fileGrantScope(grants: GrantsFile): GrantScope {
  const people = new Map(Object.entries(grants.people).map(([k, v]) => [k, new Set(v)]));
  const agents = new Map(Object.entries(grants.agents).map(([k, v]) => [k, new Set(v)]));
  return async ({ person, agent, requested }) => {
    const mine = people.get(person);
    const theirs = agent === undefined ? mine : agents.get(agent);
    return requested.filter((s) => mine?.has(s) && theirs?.has(s));
  };
}

async function openX509Source(): Promise<X509Source> {
  try {
    return await X509Source.create({ timeoutMs: 30_000 });
  } catch (err) {
    throw new TokenServiceConfigError(
      `no X.509-SVID from the Workload API at ${process.env.SPIFFE_ENDPOINT_SOCKET}: ${(err as Error).message}`,
      { cause: err },
    );
  }
}

/** `precinct token-service`: runs the trust domain's token service until SIGINT/SIGTERM. */
export const tokenServiceCommand: Command = {
  name: 'token-service',
  summary:
    'Run the trust domain token service: RFC 8693 exchange of a person proof for Transaction Tokens',
  async run(argv) {
    const flags = parseFlags(
      this.name,
      this.summary,
      argv,
      {
        listen: {
          type: 'string',
          description: 'mTLS address (default: HOST/PORT env, else [::]:8443)',
          placeholder: 'HOST:PORT',
        },
        'health-listen': {
          type: 'string',
          description: 'plain-HTTP address for /health, /ready, /metrics (default [::]:8081)',
          placeholder: 'HOST:PORT',
        },
        'advertise-host': {
          type: 'string',
          description: 'host in the printed URLs when listening on a wildcard address',
          placeholder: 'HOST',
        },
        'oidc-issuer': {
          type: 'string',
          description: "the OpenID Provider that proves people (ID tokens' iss)",
          placeholder: 'URL',
        },
        'oidc-client-id': {
          type: 'string',
          description: "this service's client id at the provider (ID tokens' aud)",
          placeholder: 'ID',
        },
        'oidc-jwks': {
          type: 'string',
          description: "the provider's public keys: an http(s) URL or a JWKS file",
          placeholder: 'URL|FILE',
        },
        'oidc-subject-claim': {
          type: 'string',
          description: 'ID token claim naming the person: sub or email (default sub)',
          placeholder: 'CLAIM',
        },
        'agent-prefix': {
          type: 'string',
          multiple: true,
          description:
            'SPIFFE ID path prefix of agent workloads, repeatable (default /agents/): their ID becomes act.sub',
          placeholder: 'PATH',
        },
        grants: {
          type: 'string',
          description:
            'JSON file: {"people": {person: [scope]}, "agents": {spiffe-id: [scope]}, "consent": {person: [spiffe-id]}}',
          placeholder: 'FILE',
        },
        ttl: {
          type: 'string',
          description: 'Transaction Token lifetime, 1s..5m (default 5m)',
          placeholder: 'DURATION',
        },
        'key-rotation': {
          type: 'string',
          description: 'signing key rotation period, 1m..30d (default 1h)',
          placeholder: 'DURATION',
        },
      },
      'Environment: SPIFFE_ENDPOINT_SOCKET (required: the service SVID and trust bundles),\n' +
        'HOST, PORT. Callers authenticate with their X.509-SVID; only workloads of the\n' +
        "service's own trust domain are admitted. Tokens are signed with ES256 keys kept in\n" +
        'memory and published at /.well-known/jwks.json on the mTLS port.',
    );
    if (!flags) return;
    const problems: string[] = [];
    for (const f of ['oidc-issuer', 'oidc-client-id', 'oidc-jwks', 'grants'])
      if (typeof flags[f] !== 'string') problems.push(`--${f} is required`);
    if (!process.env.SPIFFE_ENDPOINT_SOCKET)
      problems.push('SPIFFE_ENDPOINT_SOCKET must name the Workload API');
    const subjectClaim = (flags['oidc-subject-claim'] as string | undefined) ?? 'sub';
    if (subjectClaim !== 'sub' && subjectClaim !== 'email')
      problems.push('--oidc-subject-claim must be sub or email');
    if (problems.length > 0) throw new UsageError(problems.join('\n'));
    const ttl = seconds('ttl', flags.ttl, 1, 300);
    const rotation = seconds('key-rotation', flags['key-rotation'], 60, 30 * 86400);
    const listenOpts =
      typeof flags.listen === 'string'
        ? parseListen(flags.listen, '--listen', '::')
        : listenOptionsFromEnv({ host: '::', port: 8443 });
    const health =
      typeof flags['health-listen'] === 'string'
        ? parseListen(flags['health-listen'], '--health-listen', listenOpts.host)
        : { host: listenOpts.host, port: 8081 };
    const prefixes = (flags['agent-prefix'] as string[] | undefined) ?? ['/agents/'];
    for (const p of prefixes)
      if (!p.startsWith('/')) throw new UsageError(`--agent-prefix must start with /, got "${p}"`);
    const grants = loadGrants(flags.grants as string);
    const consent = new MemoryConsentStore();
    for (const [person, agents] of Object.entries(grants.consent)) consent.grant(person, agents);
    const person = createOidcPersonAuthenticator({
      issuer: flags['oidc-issuer'] as string,
      clientId: flags['oidc-client-id'] as string,
      jwks: loadJwks(flags['oidc-jwks'] as string),
      subjectClaim: subjectClaim as 'sub' | 'email',
    });
    // Only after every flag checked out: the source holds a Workload API stream open.
    const source = await openX509Source();
    const td = source.getX509Svid().id.trustDomain.name;
    const agentPrefixes = prefixes.map((p) => `spiffe://${td}${p}`);
    const service = await startTokenService({
      svidSource: source,
      bundleSource: source,
      persons: [person],
      consent,
      grantScope: fileGrantScope(grants),
      isAgent: (id) => agentPrefixes.some((p) => id.startsWith(p)),
      host: listenOpts.host,
      port: listenOpts.port,
      healthHost: health.host,
      healthPort: health.port,
      ...(ttl !== undefined ? { ttlSeconds: ttl } : {}),
      ...(rotation !== undefined ? { keyRotationSeconds: rotation } : {}),
      ...(typeof flags['advertise-host'] === 'string'
        ? { advertiseHost: flags['advertise-host'] }
        : {}),
    }).catch(async (err: unknown) => {
      await source.close();
      throw err;
    });
    console.log(`token-service for trust domain ${service.trustDomain} as ${service.issuer}`);
    console.log(`token endpoint ${service.tokenUrl} (mTLS)`);
    console.log(`JWKS ${service.jwksUrl} (mTLS)`);
    console.log(`probes and metrics on ${service.healthUrl}`);
    await waitForShutdown();
    await service.close();
    await source.close();
  },
};
