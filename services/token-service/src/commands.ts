import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { AuditClient } from '@precinct/audit-client';
import {
  opaServerPolicy,
  parseDocumentScope,
  policyGrantScope,
  validatePolicyData,
  wasmPolicy,
  loadDemoData,
  type PolicyData,
  type PolicyEngine,
} from '@precinct/policy';
import {
  UsageError,
  listenOptionsFromEnv,
  parseFlags,
  parseHttpUrl,
  waitForShutdown,
  parseDuration,
  parseListen,
  type Command,
} from '@precinct/runtime';
import { SpiffeId, authorizeId, tlsClientOptions } from '@precinct/spiffe';
import { X509Source } from '@precinct/spiffe/workloadapi';
import type { JWK } from 'jose';
import { exchangeAuditEvents } from './audit.js';
import { MemoryConsentStore } from './consent.js';
import { TokenServiceConfigError } from './errors.js';
import type { ExchangeDecision, GrantScope } from './exchange.js';
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
  people?: Record<string, string[]>;
  agents?: Record<string, string[]>;
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
 * The grants file: which agents each person lets act for them (`consent`, always) and, when no
 * policy decides (no `--policy`), which scopes each person and each agent has. With a policy,
 * `people` and `agents` are refused rather than ignored: an operator would otherwise believe
 * they still narrow tokens.
 */
function loadGrants(file: string, withPolicy: boolean, problems: string[]): GrantsFile | undefined {
  let doc: Partial<GrantsFile> | null;
  try {
    doc = readJson('grants', file) as Partial<GrantsFile> | null;
  } catch (err) {
    problems.push((err as Error).message);
    return undefined;
  }
  const before = problems.length;
  for (const key of ['people', 'agents', 'consent'] as const) {
    const present = doc?.[key] !== undefined;
    if (withPolicy && key !== 'consent') {
      if (present)
        problems.push(
          `--grants ${file}: "${key}" is not used when --policy decides the scope; remove it (only "consent" is read)`,
        );
    } else if (!isStringListMap(doc?.[key]))
      problems.push(`--grants ${file}: "${key}" must map names to lists of strings`);
  }
  return problems.length > before ? undefined : (doc as GrantsFile);
}

/** `--policy-data FILE`: the policy's people, agents and documents (`{"precinct": {...}}`). */
function loadPolicyData(file: string, problems: string[]): PolicyData | undefined {
  try {
    return validatePolicyData(readJson('policy-data', file));
  } catch (err) {
    const m = (err as Error).message;
    problems.push(m.startsWith('--policy-data') ? m : `--policy-data ${file}: ${m}`);
    return undefined;
  }
}

/**
 * A `fetch` over SPIFFE mTLS to one peer (the audit store), enough for the audit client: a new
 * connection per request, so every connection presents the current SVID (the options' secure
 * context follows rotation) and there is no pool to close. Refusals are rare; a connection
 * each is cheap next to them.
 */
function mtlsFetch(options: ReturnType<typeof tlsClientOptions>): typeof fetch {
  const MAX_ANSWER = 1 << 20;
  return ((input: string | URL, init?: RequestInit) => {
    const url = new URL(String(input));
    const body = typeof init?.body === 'string' ? init.body : undefined;
    return new Promise<Response>((resolve, reject) => {
      const req = httpsRequest(
        url,
        {
          method: init?.method ?? 'GET',
          headers: init?.headers as Record<string, string> | undefined,
          ...(init?.signal ? { signal: init.signal } : {}),
          createConnection: () =>
            tlsConnect({
              ...options,
              host: url.hostname.replace(/^\[|\]$/g, ''),
              port: Number(url.port) || 443,
            }),
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_ANSWER) req.destroy(new Error('answer too large'));
            else chunks.push(c);
          });
          res.on('end', () => {
            const status = res.statusCode ?? 502;
            const empty = status === 204 || status === 205 || status === 304;
            resolve(new Response(empty ? null : Buffer.concat(chunks), { status }));
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }) as typeof fetch;
}

/** person ∩ agent, from the grants file; unknown people and agents get nothing. */
function fileGrantScope(grants: GrantsFile): GrantScope {
  const people = new Map(Object.entries(grants.people ?? {}).map(([k, v]) => [k, new Set(v)]));
  const agents = new Map(Object.entries(grants.agents ?? {}).map(([k, v]) => [k, new Set(v)]));
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
            'JSON file: {"consent": {person: [agent spiffe-id]}} and, without --policy, the scopes: "people": {person: [scope]}, "agents": {spiffe-id: [scope]}',
          placeholder: 'FILE',
        },
        policy: {
          type: 'string',
          description:
            'the scope is what this policy grants (person, or person ∩ agent): wasm (in-process) or opa (an OPA server); default: the grants file',
          placeholder: 'wasm|opa',
        },
        'policy-data': {
          type: 'string',
          description:
            'with --policy wasm: the people, agents and documents ({"precinct": {...}}, as OPA data); default: the demo data in this trust domain',
          placeholder: 'FILE',
        },
        'opa-url': {
          type: 'string',
          description: 'with --policy opa: the OPA server (default: env OPA_URL)',
          placeholder: 'URL',
        },
        'audit-store': {
          type: 'string',
          description:
            "https:// URL of the audit store's SPIFFE mTLS front: refused exchanges are written there",
          placeholder: 'URL',
        },
        'audit-store-id': {
          type: 'string',
          description: 'SPIFFE ID the audit store must present (with --audit-store)',
          placeholder: 'SPIFFE_ID',
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
        'memory and published at /.well-known/jwks.json on the mTLS port.\n' +
        'With --policy, each requested scope documents:<action>:<document> is granted only if the\n' +
        'policy allows it (a delegated request: for the person through the agent), and a refusal\n' +
        "tells the caller the policy's reason and details. OPA_URL (with --policy opa), LOG_LEVEL.",
    );
    if (!flags) return;
    const problems: string[] = [];
    const attempt = <T>(f: () => T): T | undefined => {
      try {
        return f();
      } catch (err) {
        problems.push((err as Error).message);
        return undefined;
      }
    };
    for (const f of ['oidc-issuer', 'oidc-client-id', 'oidc-jwks', 'grants'])
      if (typeof flags[f] !== 'string') problems.push(`--${f} is required`);
    if (!process.env.SPIFFE_ENDPOINT_SOCKET)
      problems.push('SPIFFE_ENDPOINT_SOCKET must name the Workload API');
    const subjectClaim = (flags['oidc-subject-claim'] as string | undefined) ?? 'sub';
    if (subjectClaim !== 'sub' && subjectClaim !== 'email')
      problems.push('--oidc-subject-claim must be sub or email');
    const ttl = attempt(() => seconds('ttl', flags.ttl, 1, 300));
    const rotation = attempt(() => seconds('key-rotation', flags['key-rotation'], 60, 30 * 86400));
    const listenOpts = attempt(() =>
      typeof flags.listen === 'string'
        ? parseListen(flags.listen, '--listen', '::')
        : listenOptionsFromEnv({ host: '::', port: 8443 }),
    );
    const health = attempt(() =>
      typeof flags['health-listen'] === 'string'
        ? parseListen(flags['health-listen'], '--health-listen', listenOpts?.host ?? '::')
        : { host: listenOpts?.host ?? '::', port: 8081 },
    );
    const prefixes = (flags['agent-prefix'] as string[] | undefined) ?? ['/agents/'];
    for (const p of prefixes)
      if (!p.startsWith('/')) problems.push(`--agent-prefix must start with /, got "${p}"`);

    const policyKind = flags.policy as string | undefined;
    if (policyKind !== undefined && policyKind !== 'wasm' && policyKind !== 'opa')
      problems.push(`--policy must be wasm or opa, got "${policyKind}"`);
    let policyData: PolicyData | undefined;
    if (typeof flags['policy-data'] === 'string') {
      if (policyKind !== 'wasm') problems.push('--policy-data needs --policy wasm');
      else policyData = loadPolicyData(flags['policy-data'], problems);
    }
    let opaUrl: URL | undefined;
    if (typeof flags['opa-url'] === 'string' && policyKind !== 'opa')
      problems.push('--opa-url needs --policy opa');
    if (policyKind === 'opa') {
      const given = (flags['opa-url'] as string | undefined) ?? process.env.OPA_URL;
      if (!given) problems.push('--policy opa needs --opa-url or OPA_URL');
      else
        opaUrl = attempt(() =>
          parseHttpUrl(given, flags['opa-url'] !== undefined ? '--opa-url' : 'OPA_URL'),
        );
    }
    const grants =
      typeof flags.grants === 'string'
        ? loadGrants(flags.grants, policyKind !== undefined, problems)
        : undefined;

    let audit: { url: URL; spiffeId: string } | undefined;
    const auditUrl = flags['audit-store'] as string | undefined;
    const auditId = flags['audit-store-id'] as string | undefined;
    if (auditUrl === undefined && auditId !== undefined)
      problems.push('--audit-store-id needs --audit-store as well');
    if (auditUrl !== undefined) {
      if (auditId === undefined) problems.push('--audit-store needs --audit-store-id as well');
      const url = attempt(() => parseHttpUrl(auditUrl, '--audit-store'));
      if (url && url.protocol !== 'https:')
        problems.push(
          `--audit-store must be an https:// URL (the store's SPIFFE mTLS front), got "${auditUrl}"`,
        );
      let id: string | undefined;
      if (auditId !== undefined) {
        try {
          id = SpiffeId.parse(auditId).toString();
        } catch {
          problems.push(`--audit-store-id must be a SPIFFE ID, got "${auditId}"`);
        }
      }
      if (url && id) audit = { url, spiffeId: id };
    }
    const jwks =
      typeof flags['oidc-jwks'] === 'string'
        ? attempt(() => loadJwks(flags['oidc-jwks'] as string))
        : undefined;
    if (problems.length > 0 || !listenOpts || !health || !grants || !jwks)
      throw new UsageError(problems.join('\n'));

    const consent = new MemoryConsentStore();
    for (const [person, agents] of Object.entries(grants.consent)) consent.grant(person, agents);
    const person = createOidcPersonAuthenticator({
      issuer: flags['oidc-issuer'] as string,
      clientId: flags['oidc-client-id'] as string,
      jwks,
      subjectClaim: subjectClaim as 'sub' | 'email',
    });
    // Only after every flag checked out: the source holds a Workload API stream open.
    const source = await openX509Source();
    const closers: Array<() => Promise<unknown>> = [() => source.close()];
    const closeAll = async () => {
      for (const c of closers.reverse()) await c().catch(() => undefined);
    };
    const td = source.getX509Svid().id.trustDomain.name;
    const agentPrefixes = prefixes.map((p) => `spiffe://${td}${p}`);
    let service: Awaited<ReturnType<typeof startTokenService>>;
    try {
      let engine: PolicyEngine | undefined;
      if (opaUrl) engine = opaServerPolicy({ url: opaUrl });
      else if (policyKind === 'wasm') {
        // The demo's data moved to this trust domain, as `precinct demo policy-service` does.
        const data = policyData ?? {
          precinct: { ...loadDemoData().precinct, trust_domain: td },
        };
        if (data.precinct.trust_domain !== td)
          throw new TokenServiceConfigError(
            `--policy-data: trust_domain is ${data.precinct.trust_domain}, but this service's SVID is of ${td} (the policy would deny every person)`,
          );
        engine = await wasmPolicy({ data });
      }
      let onDecision: ((d: ExchangeDecision) => Promise<void>) | undefined;
      if (audit) {
        const client = new AuditClient({
          url: audit.url.toString(),
          fetch: mtlsFetch(tlsClientOptions(source, source, authorizeId(audit.spiffeId))),
          flushIntervalMs: 200,
        });
        closers.push(() => client.close());
        // Refusals only: a granted exchange leads to the resource server's own decision.
        onDecision = async (d) => {
          if (d.decision === 'allow') return;
          const events = exchangeAuditEvents(d, {
            resourceOf: (scope) => {
              const t = parseDocumentScope(scope);
              return t && { type: 'document', id: t.document, action: t.action };
            },
          });
          await Promise.all(events.map((e) => client.write(e)));
        };
      }
      service = await startTokenService({
        svidSource: source,
        bundleSource: source,
        persons: [person],
        consent,
        grantScope: engine ? policyGrantScope(engine) : fileGrantScope(grants),
        // The policy's reason and details are the demo's answer; a grants file has none.
        explainRefusals: engine !== undefined,
        ...(onDecision ? { onDecision } : {}),
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
      });
    } catch (err) {
      await closeAll();
      throw err;
    }
    console.log(`token-service for trust domain ${service.trustDomain} as ${service.issuer}`);
    console.log(`token endpoint ${service.tokenUrl} (mTLS)`);
    console.log(`JWKS ${service.jwksUrl} (mTLS)`);
    console.log(`probes and metrics on ${service.healthUrl}`);
    console.log(
      `scope decided by ${opaUrl ? `the OPA server at ${opaUrl.origin}` : policyKind === 'wasm' ? 'the Wasm policy' : 'the grants file'}` +
        (audit ? `; refusals to the audit store ${audit.url.origin}` : ''),
    );
    await waitForShutdown();
    await service.close();
    await closeAll();
  },
};
