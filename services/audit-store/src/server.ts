import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isUtf8 } from 'node:buffer';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import {
  KubeAuthError,
  createKubeAuth,
  kubeAuthFastifyPlugin,
  parseServiceAccountUsername,
  resolveAttrs,
  stripIdentityHeaders,
  type Authorizer,
  type ResourceAttributes,
  type TokenVerifier,
} from '@precinct/kube';
import { DELEGATION_HEADER, DelegationError, type DelegationVerifier } from '@precinct/delegation';
import {
  authorizeAny,
  tlsServerOptions,
  type Authorizer as SpiffeAuthorizer,
  type SpiffeTlsServerOptions,
  type X509BundleSource,
  type X509SvidSource,
} from '@precinct/spiffe';
import { spiffeFastify } from '@precinct/spiffe/fastify';
import { createLogger, formatHostPort, listen, type Logger } from '@precinct/runtime';
import {
  PROBLEMS,
  PROBLEM_CONTENT_TYPE,
  problem,
  probesPlugin,
  sendProblem,
  type ProblemCode,
} from '@precinct/runtime/http';
import { createPgDb, createPgliteDb, type Db } from './db.js';
import { AuditStoreError } from './errors.js';
import {
  DEFAULT_TIME_WINDOW,
  LIMITS,
  checkEvent,
  eventInputSchema,
  storedEventSchema,
  type AuditEventInput,
  type Writer,
} from './events.js';
import { loadSigningKey, signExport, type SigningKey } from './export.js';
import {
  MAX_PROBLEMS,
  checkStrings,
  mayHoldBadStrings,
  parseTimestamp,
  stringProblem,
  type InputProblem,
  type TimeWindow,
} from './input.js';
import { migrate } from './migrations.js';
import { AuditRepository, FILTER_FIELDS, type EventFilter } from './store.js';

/** Where RBAC is asked (Kubernaut's tiers); every field configurable. */
export interface AuthzTarget {
  group?: string;
  resource: string;
  name: string;
  namespace: string;
}

export interface AuditStoreOptions {
  /** PostgreSQL URL; otherwise PGlite (in `dataDir`, else in memory). Ignored when `db` is set. */
  databaseUrl?: string;
  dataDir?: string;
  /** A database the caller owns (not closed by `close()`). */
  db?: Db;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Host printed in `url` when listening on a wildcard address. Default `localhost`. */
  advertiseHost?: string;
  /**
   * Kubernetes auth: bearer ServiceAccount tokens (TokenReview/JWKS) and SubjectAccessReview.
   * With `spiffe`, only the authorizer is used (RBAC for the SPIFFE ID). `false` only for
   * local development (writers are `anonymous`, or their SPIFFE ID with `spiffe`).
   */
  auth: { verifier: TokenVerifier; authorizer: Authorizer } | false;
  /**
   * SPIFFE mTLS on the main port: every caller presents an X.509-SVID that chains to its
   * trust domain's bundle; `written_by` is its SPIFFE ID and RBAC is asked for that ID as a
   * Kubernetes User (groups: its trust domain, `spiffe://<td>`). Bearer tokens are then not
   * used. Probes move to a plain-HTTP port (`healthPort`), since they cannot present an SVID.
   */
  spiffe?: {
    svidSource: X509SvidSource;
    bundleSource: X509BundleSource;
    /** A TLS-level gate before RBAC. Default: any SVID that verifies. */
    authorizer?: SpiffeAuthorizer;
    /** Plain-HTTP port for /healthz, /readyz, /metrics. Default 0 (a free port). */
    healthPort?: number;
    /** Host for the probe port. Default: the main host. */
    healthHost?: string;
  };
  /**
   * Verifies `Precinct-Delegation` tokens (an agent writing for a person): the token's actor
   * must be the verified caller; its subject is recorded as `on_behalf_of`. Without it, a
   * request carrying the header is refused rather than recorded without the person.
   */
  delegation?: DelegationVerifier;
  authz?: Partial<AuthzTarget>;
  /** Chain hashes become HMAC-SHA256 under this key. */
  hashKey?: Buffer;
  /** PKCS#8 PEM Ed25519 key signing exports; default: an ephemeral key. */
  signingKeyPem?: string | Buffer;
  logger?: Logger;
  /** How often the retention job runs; 0 disables it. Default 1 h. */
  retentionIntervalMs?: number;
  /**
   * How long an `Idempotency-Key` is remembered (a retry later than this writes again).
   * Default 24 h; expired keys are removed by the retention job.
   */
  idempotencyTtlMs?: number;
  /** Most events one export may hold (it is signed as a whole). Default 100,000. */
  maxExportEvents?: number;
  /**
   * Audiences a bearer token must name (one of them) to be accepted: the store's own, so a
   * writer never hands it a credential that also works against the Kubernetes API. The
   * verifier must check them too (TokenReview `spec.audiences`, a JWKS verifier's
   * `audiences`); the store refuses an identity whose `audiences` name none of these (401).
   * Default `['data-storage-service']` (Kubernaut's DataStorage audience).
   */
  tokenAudiences?: readonly string[];
  /**
   * How far in the past an `event_timestamp` may lie. Default: the default retention, 2555
   * days. An event past its own `retention_days` is refused too.
   */
  maxEventAgeMs?: number;
  /** How far in the future an `event_timestamp` may lie (writers' clock skew). Default 5 min. */
  maxClockSkewMs?: number;
  /**
   * How often monthly partitions are created ahead (also once at start). Writes never create
   * partitions: the month being written and the months up to the accepted skew have one
   * already; older months' rows go to the default partition. Default 1 h.
   */
  partitionIntervalMs?: number;
}

/** The audience of tokens minted for the store (`kubectl create token SA --audience ...`). */
export const DEFAULT_TOKEN_AUDIENCE = 'data-storage-service';

export interface AuditStore {
  url: string;
  port: number;
  /** With `spiffe`: the plain-HTTP probe/metrics address. */
  healthUrl?: string;
  /** Exports are signed by this key; give it to `verify-export`. */
  publicKeyPem: string;
  /** Runs the retention job once; resolves with the number of events deleted. */
  runRetention(now?: Date): Promise<number>;
  close(): Promise<void>;
}

/** Namespace of the store's own pod, for the default SubjectAccessReview namespace. */
export function defaultNamespace(env: NodeJS.ProcessEnv = process.env): string {
  if (env.POD_NAMESPACE) return env.POD_NAMESPACE;
  try {
    const ns = readFileSync(
      '/var/run/secrets/kubernetes.io/serviceaccount/namespace',
      'utf8',
    ).trim();
    if (ns) return ns;
  } catch {
    /* not in a pod */
  }
  return 'default';
}

const openapi = readFileSync(new URL('./openapi.json', import.meta.url), 'utf8');

const problemSchema = {
  type: 'object',
  properties: {
    type: { type: 'string' },
    title: { type: 'string' },
    status: { type: 'integer' },
    detail: { type: 'string' },
    code: { type: 'string' },
    errors: {
      type: 'array',
      items: {
        type: 'object',
        properties: { field: { type: 'string' }, message: { type: 'string' } },
      },
    },
  },
};
const errorResponses = { '4xx': problemSchema, '5xx': problemSchema };

const querySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    ...Object.fromEntries(
      FILTER_FIELDS.map((f) => [f, { type: 'string', minLength: 1, maxLength: 255 }]),
    ),
    since: { type: 'string', format: 'date-time', maxLength: 64 },
    until: { type: 'string', format: 'date-time', maxLength: 64 },
    limit: { type: 'string', pattern: '^[0-9]{1,4}$' },
    offset: { type: 'string', pattern: '^[0-9]{1,6}$' },
    cursor: { type: 'string', maxLength: 512 },
  },
};

class ValidationProblem extends Error {
  constructor(readonly errors: Array<{ field: string; message: string }>) {
    super('invalid request');
  }
}

/**
 * The `Idempotency-Key` request header (IETF httpapi draft): a structured-field string
 * (`"..."`) or, leniently, a bare token; 1..255 visible ASCII characters.
 */
function idempotencyKeyOf(req: FastifyRequest): string | undefined {
  const raw = req.headers['idempotency-key'];
  if (raw === undefined) return undefined;
  const v = typeof raw === 'string' ? raw.trim() : undefined;
  const key = v && /^".*"$/.test(v) ? v.slice(1, -1) : v;
  // Visible ASCII without '"' and '\\', so a key reads the same quoted or bare.
  if (!key || key.length > 255 || !/^[\x21\x23-\x5b\x5d-\x7e]+$/.test(key))
    throw new ValidationProblem([
      {
        field: 'Idempotency-Key',
        message: "must be 1..255 visible ASCII characters other than '\"' and '\\'",
      },
    ]);
  return key;
}

function encodeCursor(ts: string, id: string): string {
  return Buffer.from(JSON.stringify([ts, id])).toString('base64url');
}
function decodeCursor(c: string): { ts: string; id: string } {
  try {
    const v = JSON.parse(Buffer.from(c, 'base64url').toString('utf8')) as unknown;
    // Only what encodeCursor writes: an ISO timestamp exactly as toISOString gives it and a
    // lowercase UUID, both handed to PostgreSQL as typed parameters.
    if (
      Array.isArray(v) &&
      v.length === 2 &&
      typeof v[0] === 'string' &&
      parseTimestamp(v[0])?.toISOString() === v[0] &&
      typeof v[1] === 'string' &&
      /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(v[1])
    ) {
      return { ts: v[0], id: v[1] };
    }
  } catch {
    /* fall through */
  }
  throw new ValidationProblem([{ field: 'cursor', message: 'is not a cursor this store issued' }]);
}

/** `since`/`until` of a read, checked as the database will take them. */
function checkRange(q: { since?: string; until?: string }): void {
  const bad: InputProblem[] = [];
  for (const k of ['since', 'until'] as const)
    if (q[k] !== undefined && !parseTimestamp(q[k]))
      bad.push({ field: k, message: 'must be an RFC 3339 date-time in years 0001..9999' });
  if (bad.length) throw new ValidationProblem(bad);
}

function fieldOf(e: { instancePath: string; params: Record<string, unknown> }): string {
  const path = e.instancePath
    .split('/')
    .filter(Boolean)
    .map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p}`))
    .join('');
  const extra =
    typeof e.params.missingProperty === 'string'
      ? `.${e.params.missingProperty}`
      : typeof e.params.additionalProperty === 'string'
        ? `.${e.params.additionalProperty}`
        : '';
  return `${path}${extra}`.replace(/^\./, '') || '(body)';
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The verified caller when it is not a bearer-token identity (SPIFFE mTLS). */
    caller?: { written_by: string; written_by_kind: string };
    /** The person a verified delegation token says the caller acts for. */
    onBehalfOf?: string;
    /** SHA-256 of the JSON body as received, when the request carries an Idempotency-Key. */
    bodyHash?: string;
    /** The JSON body may hold a string the store cannot keep (see `mayHoldBadStrings`). */
    suspectStrings?: boolean;
  }
}

/**
 * Requests Node's HTTP parser refuses before Fastify sees them (headers or URL over 16 KiB,
 * malformed request lines) get problem+json too, as Fastify's default handler sends them.
 */
function problemClientError(err: Error & { code?: string }, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const p = problem(
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? 'request_timeout'
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? 'request_headers_too_large'
        : 'bad_request',
  );
  const body = JSON.stringify(p);
  if (socket.writable)
    socket.write(
      `HTTP/1.1 ${p.status} ${STATUS_CODES[p.status]}\r\nConnection: close\r\nContent-Length: ${body.length}\r\nContent-Type: ${PROBLEM_CONTENT_TYPE}\r\n\r\n${body}`,
    );
  socket.destroy();
}

/**
 * Refuses (401, ERR_TOKEN_AUDIENCE) a verified identity whose audiences name none of the
 * store's: a token minted for the Kubernetes API (or any other service) is not a credential
 * for the store, even from a verifier that forgot to ask for the audience.
 */
function audienceBound(inner: TokenVerifier, audiences: readonly string[]): TokenVerifier {
  if (audiences.length === 0 || audiences.some((a) => !a))
    throw new TypeError('tokenAudiences: at least one non-empty audience is required');
  return {
    async verify(token) {
      const id = await inner.verify(token);
      if (!id.audiences.some((a) => audiences.includes(a)))
        throw new KubeAuthError('ERR_TOKEN_AUDIENCE', 'token not issued for the audit store');
      return id;
    },
    ...(inner.close ? { close: () => inner.close!() } : {}),
  };
}

/**
 * What an Idempotency-Key is bound to besides the writer (the key's row is per writer): the
 * route, the body's bytes, and the person the writer acts for, so the same key and body sent
 * for another person is a conflict (422), never a replay of the first person's receipt.
 * Without a person, the form of earlier releases (keys stored before an upgrade still match).
 */
function idempotencyRequestHash(batch: boolean, bodyHash: string, writer: Writer): string {
  const base = `${batch ? 'batch' : 'single'}:${bodyHash}`;
  if (writer.on_behalf_of === null) return base;
  return `${base}:obo:${createHash('sha256').update(writer.on_behalf_of).digest('hex')}`;
}

/** Who is writing, from proof only: the mTLS peer or the verified bearer token. */
function callerOf(req: FastifyRequest): { written_by: string; written_by_kind: string } {
  if (req.caller) return req.caller;
  if (req.identity)
    return {
      written_by: req.identity.username,
      written_by_kind: parseServiceAccountUsername(req.identity.username)
        ? 'serviceaccount'
        : 'user',
    };
  return { written_by: 'anonymous', written_by_kind: 'unauthenticated' };
}

/**
 * The probes, public (never authenticated): `@precinct/runtime/http`'s `/health`, `/ready` and
 * `/metrics`, and `/healthz`, `/readyz`, the names the chart, the CLI and existing deployments
 * probe (same checks; `/readyz` answers 503 "database unreachable" as it always has).
 */
async function addProbeRoutes(app: FastifyInstance, db: Db, registry: Registry): Promise<void> {
  const database = () => db.ping();
  await app.register(async (scope) => {
    // Public in every auth mode: the auth hooks skip routes whose kubeAuth is false.
    scope.addHook('onRoute', (route) => {
      route.config = { ...route.config, kubeAuth: false };
    });
    await scope.register(probesPlugin, { registry, ready: { database } });
    scope.get('/healthz', async () => ({ status: 'ok' }));
    scope.get('/readyz', async (_req, reply) => {
      try {
        await database();
        return { status: 'ok' };
      } catch {
        return sendProblem(reply, 'database_unreachable');
      }
    });
  });
}

/**
 * The code for a Fastify client error's status: the table's code of that status, else
 * `bad_request` (the store has always answered those with the generic "bad request").
 */
function clientErrorCode(status: number): ProblemCode {
  if (status === 400) return 'bad_request';
  const same = (Object.keys(PROBLEMS) as ProblemCode[]).filter(
    (c) => PROBLEMS[c].status === status,
  );
  return same.length === 1 ? same[0]! : 'bad_request';
}

/** Builds the Fastify app (not listening). */
export async function buildAuditApp(
  repo: AuditRepository,
  db: Db,
  opts: {
    auth: AuditStoreOptions['auth'];
    /** From `tlsServerOptions()`: the app serves SPIFFE mTLS. */
    spiffeTls?: SpiffeTlsServerOptions;
    delegation?: DelegationVerifier;
    authz: AuthzTarget;
    signingKey: SigningKey;
    logger: Logger;
    registry: Registry;
    maxExportEvents: number;
    /** Default `[DEFAULT_TOKEN_AUDIENCE]`. */
    tokenAudiences?: readonly string[];
    /** Default `DEFAULT_TIME_WINDOW`. */
    timeWindow?: TimeWindow;
  },
): Promise<FastifyInstance> {
  const timeWindow = opts.timeWindow ?? DEFAULT_TIME_WINDOW;
  const auth = opts.auth && {
    verifier: audienceBound(opts.auth.verifier, opts.tokenAudiences ?? [DEFAULT_TOKEN_AUDIENCE]),
    authorizer: opts.auth.authorizer,
  };
  const app = Fastify({
    ...(opts.spiffeTls ? { https: opts.spiffeTls } : {}),
    loggerInstance: opts.logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: LIMITS.bodyBytes,
    clientErrorHandler: problemClientError,
    // A path whose percent-encoding is not UTF-8 is refused by the router before any hook.
    frameworkErrors: (_err, _req, reply) =>
      sendProblem(reply as FastifyReply, 'invalid_request', 'the URL is not percent-encoded UTF-8'),
    ajv: { customOptions: { allErrors: true, removeAdditional: false, coerceTypes: false } },
  });
  app.addSchema(eventInputSchema);
  app.addSchema(storedEventSchema);
  // Fastify's own JSON parser (prototype-poisoning checks included), keeping the body's hash:
  // the idempotency check compares requests by their bytes, which a retry sends unchanged,
  // instead of serializing a 1000-event batch again. Bytes that are not UTF-8 are refused
  // rather than decoded with U+FFFD in their place; one scan of the text tells whether any
  // string may need the closer look of the preValidation hook below.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser(
    'application/json',
    { parseAs: 'buffer' },
    (req: FastifyRequest, body: string | Buffer, done) => {
      const buf = typeof body === 'string' ? Buffer.from(body) : body;
      if (!isUtf8(buf)) {
        done(new ValidationProblem([{ field: '(body)', message: 'must be UTF-8' }]), undefined);
        return;
      }
      if (req.headers['idempotency-key'] !== undefined)
        req.bodyHash = createHash('sha256').update(buf).digest('hex');
      const text = buf.toString('utf8');
      req.suspectStrings = mayHoldBadStrings(text);
      parseJson(req, text, done);
    },
  );
  // Every string that came from the network and may be stored, hashed or handed to the
  // database as text: the query string, path parameters and the body. Before schema
  // validation, so the answer names the real problem.
  app.addHook('preValidation', async (req) => {
    const bad: InputProblem[] = [];
    // The query parser keeps a value whose percent-encoding is not UTF-8 (`%ED%A0%80`, a
    // surrogate; `%FF`) as raw text: the client asked for something no stored value can be.
    const q = req.url.indexOf('?');
    if (q >= 0) {
      try {
        decodeURIComponent(req.url.slice(q + 1));
      } catch {
        bad.push({ field: '(query)', message: 'must be percent-encoded UTF-8' });
      }
    }
    if (req.query) checkStrings(req.query, '', bad);
    if (req.params) checkStrings(req.params, '', bad);
    if (req.suspectStrings) checkStrings(req.body, '', bad);
    if (bad.length) throw new ValidationProblem(bad);
  });

  const written = new Counter({
    name: 'precinct_audit_events_written_total',
    help: 'Audit events committed.',
    registers: [opts.registry],
  });
  const failures = new Counter({
    name: 'precinct_audit_write_failures_total',
    help: 'Write requests that committed nothing, by reason.',
    labelNames: ['reason'],
    registers: [opts.registry],
  });
  const replays = new Counter({
    name: 'precinct_audit_idempotent_replays_total',
    help: 'Write requests answered from an earlier commit of the same idempotency key.',
    registers: [opts.registry],
  });
  const writeSeconds = new Histogram({
    name: 'precinct_audit_write_seconds',
    help: 'Time to commit one write request (single or batch).',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [opts.registry],
  });

  app.setErrorHandler((err: FastifyError | AuditStoreError | ValidationProblem, req, reply) => {
    const invalid = (errors: InputProblem[]) =>
      reply
        .code(400)
        .type(PROBLEM_CONTENT_TYPE)
        .send({ ...problem('invalid_request'), errors });
    if (err instanceof ValidationProblem) return invalid(err.errors);
    if ('validation' in err && err.validation)
      return invalid(
        err.validation.map((v) => ({
          field: fieldOf(v as { instancePath: string; params: Record<string, unknown> }),
          message: v.message ?? 'is invalid',
        })),
      );
    if (err instanceof AuditStoreError) {
      if (err.code === 'ERR_IDEMPOTENCY_CONFLICT') {
        failures.inc({ reason: 'idempotency_conflict' });
        return sendProblem(
          reply,
          'idempotency_key_reused',
          'this Idempotency-Key was already used for a different request',
        );
      }
      if (err.code === 'ERR_DB_UNAVAILABLE') {
        req.log.warn({ code: err.code, err: err.message }, 'database unavailable');
        failures.inc({ reason: 'db_unavailable' });
        reply.header('retry-after', '1');
        return sendProblem(reply, 'storage_unavailable', 'retry later');
      }
      req.log.error({ code: err.code, err: err.message }, 'storage error');
      return sendProblem(reply, 'internal');
    }
    const fe = err as FastifyError;
    if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return sendProblem(reply, 'payload_too_large');
    if (fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
      return sendProblem(reply, 'unsupported_media_type');
    // Fastify's other client errors (unparsable JSON, a bad Content-Length, ...).
    if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500)
      return sendProblem(reply, clientErrorCode(fe.statusCode));
    req.log.error({ err }, 'unhandled error');
    return sendProblem(reply, 'internal');
  });
  app.setNotFoundHandler((_req, reply) => sendProblem(reply, 'not_found'));

  if (opts.spiffeTls) {
    // spiffeServer (installed by the plugin) hands only authenticated connections to Fastify,
    // so every request here has a verified peer SPIFFE ID.
    await app.register(spiffeFastify, { tlsOptions: opts.spiffeTls });
    const rbac = auth
      ? createKubeAuth({
          verifier: auth.verifier,
          authorizer: auth.authorizer,
          logger: opts.logger,
          registry: opts.registry,
        })
      : undefined;
    app.addHook('onRequest', async (req, reply) => {
      stripIdentityHeaders(req.headers);
      const route = req.routeOptions.config.kubeAuth;
      if (route === false) return;
      const id = req.spiffeId;
      if (!id) return sendProblem(reply, 'authentication_failed');
      if (rbac) {
        const no = await rbac.authorize(
          { username: id.toString(), groups: [id.trustDomain.idString()] },
          resolveAttrs(route, req),
        );
        // The kube package's own generic problem (401, 403 or 503), as its plugin sends it.
        if (no) return reply.code(no.problem.status).type(PROBLEM_CONTENT_TYPE).send(no.problem);
      }
      req.caller = { written_by: id.toString(), written_by_kind: 'spiffe' };
    });
  } else if (auth) {
    await app.register(kubeAuthFastifyPlugin, {
      verifier: auth.verifier,
      authorizer: auth.authorizer,
      logger: opts.logger,
      registry: opts.registry,
    });
  }
  app.decorateRequest('caller', undefined);
  app.decorateRequest('onBehalfOf', undefined);
  app.decorateRequest('bodyHash', undefined);
  app.decorateRequest('suspectStrings', false);
  const delegations = new Counter({
    name: 'precinct_audit_delegation_total',
    help: 'Requests that carried a delegation token, by result and reason.',
    labelNames: ['result', 'reason'],
    registers: [opts.registry],
  });
  // After authentication (hooks run in registration order): a delegation token is believed
  // only when it verifies and names the verified caller as its actor.
  app.addHook('onRequest', async (req, reply) => {
    const raw = req.headers[DELEGATION_HEADER];
    delete req.headers[DELEGATION_HEADER];
    if (raw === undefined || req.routeOptions.config.kubeAuth === false) return;
    const refuse = (status: 401 | 503, reason: string) => {
      delegations.inc({ result: 'refused', reason });
      req.log.warn({ reason, status }, 'delegation token refused');
      return sendProblem(
        reply,
        status === 401 ? 'authentication_failed' : 'authentication_unavailable',
      );
    };
    if (!opts.delegation) return refuse(401, 'not_configured');
    if (typeof raw !== 'string') return refuse(401, 'malformed');
    try {
      const d = await opts.delegation.verify(raw, { actor: callerOf(req).written_by });
      // The person is stored and hashed like any field: a subject the database cannot keep
      // exactly would make this writer's chain verify as tampered.
      if (stringProblem(d.subject) || d.subject.length > 255)
        return refuse(401, 'malformed_subject');
      req.onBehalfOf = d.subject;
      delegations.inc({ result: 'accepted', reason: 'ok' });
    } catch (err) {
      if (!(err instanceof DelegationError)) throw err;
      return refuse(err.reason === 'jwks_unavailable' ? 503 : 401, err.reason);
    }
  });
  const attr = (verb: string): ResourceAttributes => ({
    verb,
    resource: opts.authz.resource,
    name: opts.authz.name,
    namespace: opts.authz.namespace,
    ...(opts.authz.group ? { group: opts.authz.group } : {}),
  });
  const READ = { kubeAuth: [attr('get')] };
  const WRITE = { kubeAuth: [attr('get'), attr('create')] };
  const HOLD = { kubeAuth: [attr('update')] };
  const PUBLIC = { kubeAuth: false as const };

  const writerOf = (req: FastifyRequest): Writer => ({
    ...callerOf(req),
    on_behalf_of: req.onBehalfOf ?? null,
  });

  const write = async (
    req: FastifyRequest,
    reply: FastifyReply,
    events: AuditEventInput[],
    batch: boolean,
  ) => {
    const key = idempotencyKeyOf(req);
    const now = new Date();
    const bad: InputProblem[] = [];
    for (let i = 0; i < events.length && bad.length < MAX_PROBLEMS; i++)
      bad.push(...checkEvent(events[i]!, batch ? `[${i}].` : '', now, timeWindow));
    if (bad.length) throw new ValidationProblem(bad.slice(0, MAX_PROBLEMS));
    const writer = writerOf(req);
    const end = writeSeconds.startTimer();
    const r = await repo.insert(
      events,
      writer,
      now,
      key === undefined
        ? undefined
        : { key, requestHash: idempotencyRequestHash(batch, req.bodyHash ?? '', writer) },
    );
    end();
    if (r.replayed) {
      replays.inc();
      reply.header('idempotent-replayed', 'true');
    } else written.inc(r.events.length);
    return r.events;
  };

  await addProbeRoutes(app, db, opts.registry);
  app.get('/openapi.json', { config: PUBLIC }, async (_req, reply) =>
    reply.type('application/json').send(openapi),
  );

  app.post(
    '/api/v1/audit/events',
    {
      config: WRITE,
      schema: {
        body: { $ref: 'AuditEventInput#' },
        response: {
          201: {
            type: 'object',
            required: ['event_id', 'event_timestamp', 'message'],
            properties: {
              event_id: { type: 'string' },
              event_timestamp: { type: 'string' },
              correlation_id: { type: 'string' },
              chain_seq: { type: 'integer' },
              event_hash: { type: 'string' },
              written_by: { type: 'string' },
              message: { type: 'string' },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (req, reply) => {
      const [e] = await write(req, reply, [req.body as AuditEventInput], false);
      return reply.code(201).send({ ...e!, message: 'audit event created' });
    },
  );

  app.post(
    '/api/v1/audit/events/batch',
    {
      config: WRITE,
      schema: {
        body: {
          type: 'array',
          minItems: 1,
          maxItems: LIMITS.batchEvents,
          items: { $ref: 'AuditEventInput#' },
        },
        response: {
          201: {
            type: 'object',
            required: ['event_ids', 'message'],
            properties: {
              event_ids: { type: 'array', items: { type: 'string' } },
              message: { type: 'string' },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (req, reply) => {
      const stored = await write(req, reply, req.body as AuditEventInput[], true);
      return reply.code(201).send({
        event_ids: stored.map((e) => e.event_id),
        message: `${stored.length} audit events created`,
      });
    },
  );

  app.get(
    '/api/v1/audit/events',
    {
      config: READ,
      schema: {
        querystring: querySchema,
        response: {
          200: {
            type: 'object',
            required: ['data', 'pagination'],
            properties: {
              data: { type: 'array', items: { $ref: 'AuditEvent#' } },
              pagination: {
                type: 'object',
                properties: {
                  limit: { type: 'integer' },
                  offset: { type: 'integer' },
                  has_more: { type: 'boolean' },
                  next_cursor: { type: ['string', 'null'] },
                },
              },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (req) => {
      const q = req.query as Record<string, string | undefined>;
      checkRange(q);
      const limit = q.limit !== undefined ? Number(q.limit) : 50;
      const offset = q.offset !== undefined ? Number(q.offset) : 0;
      const bad: Array<{ field: string; message: string }> = [];
      if (limit < 1 || limit > 1000) bad.push({ field: 'limit', message: 'must be 1..1000' });
      if (offset > 100000) bad.push({ field: 'offset', message: 'must be at most 100000' });
      if (bad.length) throw new ValidationProblem(bad);
      const after = q.cursor !== undefined ? decodeCursor(q.cursor) : undefined;
      const filter: EventFilter = {};
      for (const k of [...FILTER_FIELDS, 'since', 'until'] as const)
        if (q[k] !== undefined) filter[k] = q[k];
      const { events, hasMore } = await repo.query(filter, {
        limit,
        offset,
        ...(after ? { after } : {}),
      });
      const last = events[events.length - 1];
      return {
        data: events,
        pagination: {
          limit,
          offset,
          has_more: hasMore,
          next_cursor: hasMore && last ? encodeCursor(last.event_timestamp, last.event_id) : null,
        },
      };
    },
  );

  app.post(
    '/api/v1/audit/verify-chain',
    {
      config: READ,
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['correlation_id'],
          properties: { correlation_id: { type: 'string', minLength: 1, maxLength: 255 } },
        },
        response: {
          200: {
            type: 'object',
            required: ['is_valid', 'events_checked', 'broken_links', 'tampered_events'],
            properties: {
              correlation_id: { type: 'string' },
              is_valid: { type: 'boolean' },
              events_checked: { type: 'integer' },
              broken_links: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: {
                    event_id: { type: ['string', 'null'] },
                    chain_seq: { type: ['integer', 'null'] },
                    reason: { type: 'string' },
                  },
                },
              },
              tampered_events: { type: 'array', items: { type: 'string' } },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (req) => repo.verify((req.body as { correlation_id: string }).correlation_id),
  );

  const holdSchema = {
    type: 'object',
    properties: {
      correlation_id: { type: 'string' },
      reason: { type: 'string' },
      placed_by: { type: 'string' },
      placed_at: { type: 'string' },
    },
  };
  app.post(
    '/api/v1/audit/legal-hold',
    {
      config: HOLD,
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['correlation_id', 'reason'],
          properties: {
            correlation_id: { type: 'string', minLength: 1, maxLength: 255 },
            reason: { type: 'string', minLength: 1, maxLength: LIMITS.longString },
          },
        },
        response: { 201: holdSchema, ...errorResponses },
      },
    },
    async (req, reply) => {
      const b = req.body as { correlation_id: string; reason: string };
      return reply
        .code(201)
        .send(await repo.placeHold(b.correlation_id, b.reason, writerOf(req).written_by));
    },
  );
  app.get(
    '/api/v1/audit/legal-hold',
    {
      config: READ,
      schema: {
        response: {
          200: { type: 'object', properties: { holds: { type: 'array', items: holdSchema } } },
          ...errorResponses,
        },
      },
    },
    async () => ({ holds: await repo.listHolds() }),
  );
  app.delete(
    '/api/v1/audit/legal-hold/:correlation_id',
    {
      config: HOLD,
      schema: {
        params: {
          type: 'object',
          properties: { correlation_id: { type: 'string', minLength: 1, maxLength: 255 } },
        },
        response: { 204: { type: 'null' }, ...errorResponses },
      },
    },
    async (req, reply) => {
      const id = (req.params as { correlation_id: string }).correlation_id;
      if (!(await repo.releaseHold(id))) return sendProblem(reply, 'legal_hold_not_found');
      return reply.code(204).send();
    },
  );

  app.get(
    '/api/v1/audit/export',
    {
      config: READ,
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            since: { type: 'string', format: 'date-time', maxLength: 64 },
            until: { type: 'string', format: 'date-time', maxLength: 64 },
            correlation_id: { type: 'string', minLength: 1, maxLength: 255 },
            event_category: { type: 'string', minLength: 1, maxLength: 255 },
          },
        },
      },
    },
    async (req, reply) => {
      const q = req.query as EventFilter;
      checkRange(q);
      const chunks: Buffer[] = [];
      let n = 0;
      for await (const e of repo.scan(q)) {
        if (++n > opts.maxExportEvents) {
          return sendProblem(
            reply,
            'export_too_large',
            `narrow the time range: at most ${opts.maxExportEvents} events per export`,
          );
        }
        chunks.push(Buffer.from(`${JSON.stringify(e)}\n`));
      }
      const body = Buffer.concat(chunks);
      return reply
        .type('application/x-ndjson')
        .header('x-audit-export-signature', signExport(body, opts.signingKey))
        .header('x-audit-export-signature-alg', 'Ed25519')
        .header('x-audit-export-key-id', opts.signingKey.keyId)
        .header('x-audit-export-events', String(n))
        .send(body);
    },
  );
  app.get('/api/v1/audit/export/public-key', { config: PUBLIC }, async (_req, reply) =>
    reply
      .type('application/x-pem-file')
      .header('x-audit-export-key-id', opts.signingKey.keyId)
      .send(opts.signingKey.publicKeyPem),
  );
  return app;
}

/** Starts the audit store: migrates, listens, runs the retention job. */
export async function startAuditStore(o: AuditStoreOptions): Promise<AuditStore> {
  const logger = o.logger ?? createLogger('audit-store');
  const ownsDb = !o.db;
  const db = o.db ?? (o.databaseUrl ? createPgDb(o.databaseUrl) : await createPgliteDb(o.dataDir));
  try {
    await migrate(db);
    const repo = new AuditRepository(db, o.hashKey, logger);
    const timeWindow: TimeWindow = {
      maxAgeMs: o.maxEventAgeMs ?? DEFAULT_TIME_WINDOW.maxAgeMs,
      maxSkewMs: o.maxClockSkewMs ?? DEFAULT_TIME_WINDOW.maxSkewMs,
    };
    for (const [k, v] of Object.entries(timeWindow))
      if (!Number.isSafeInteger(v) || v < 0)
        throw new TypeError(`${k} must be a whole number >= 0`);
    // Enough months ahead that the latest accepted timestamp (now + skew) has its partition,
    // with a month to spare for a partition job that fails once.
    const monthsAhead = 1 + Math.ceil(timeWindow.maxSkewMs / (28 * 86_400_000));
    const ensurePartitions = () => repo.ensurePartitionsAhead(new Date(), monthsAhead);
    await ensurePartitions();
    const registry = new Registry();
    collectDefaultMetrics({ register: registry });
    const signingKey = loadSigningKey(o.signingKeyPem);
    const authz: AuthzTarget = {
      resource: 'services',
      name: 'data-storage-service',
      namespace: defaultNamespace(),
      ...Object.fromEntries(Object.entries(o.authz ?? {}).filter(([, v]) => v !== undefined)),
    };
    const spiffeTls = o.spiffe
      ? tlsServerOptions(
          o.spiffe.svidSource,
          o.spiffe.bundleSource,
          o.spiffe.authorizer ?? authorizeAny(),
        )
      : undefined;
    const app = await buildAuditApp(repo, db, {
      auth: o.auth,
      ...(spiffeTls ? { spiffeTls } : {}),
      ...(o.delegation ? { delegation: o.delegation } : {}),
      authz,
      signingKey,
      logger,
      registry,
      maxExportEvents: o.maxExportEvents ?? 100_000,
      ...(o.tokenAudiences ? { tokenAudiences: o.tokenAudiences } : {}),
      timeWindow,
    });
    await app.ready();
    const host = o.host ?? '::';
    const port = await listen(app.server, { host, port: o.port ?? 0 });
    const shownHost = host === '::' || host === '0.0.0.0' ? (o.advertiseHost ?? 'localhost') : host;
    let probes: FastifyInstance | undefined;
    let healthUrl: string | undefined;
    if (o.spiffe) {
      probes = Fastify({ logController: new LogController({ disableRequestLogging: true }) });
      await addProbeRoutes(probes, db, registry);
      try {
        await probes.ready();
        const hp = await listen(probes.server, {
          host: o.spiffe.healthHost ?? host,
          port: o.spiffe.healthPort ?? 0,
        });
        healthUrl = `http://${formatHostPort(shownHost, hp)}`;
      } catch (err) {
        await app.close();
        await probes.close();
        throw err;
      }
    }
    const idemTtl = o.idempotencyTtlMs ?? 24 * 3_600_000;
    const runRetention = async (at?: Date) => {
      await repo.expireIdempotencyKeys(at ?? new Date(), idemTtl);
      const n = await repo.applyRetention(at);
      if (n > 0) logger.info({ deleted: n }, 'retention deleted expired events');
      return n;
    };
    const interval = o.retentionIntervalMs ?? 3_600_000;
    const timer =
      interval > 0
        ? setInterval(() => {
            runRetention().catch((err: unknown) =>
              logger.warn({ err: (err as Error).message }, 'retention run failed'),
            );
          }, interval).unref()
        : undefined;
    const partitionInterval = o.partitionIntervalMs ?? 3_600_000;
    const partitionTimer =
      partitionInterval > 0
        ? setInterval(() => {
            ensurePartitions().catch((err: unknown) =>
              logger.warn({ err: (err as Error).message }, 'partition job failed'),
            );
          }, partitionInterval).unref()
        : undefined;
    let closed: Promise<void> | undefined;
    return {
      url: `${spiffeTls ? 'https' : 'http'}://${formatHostPort(shownHost, port)}`,
      port,
      ...(healthUrl ? { healthUrl } : {}),
      publicKeyPem: signingKey.publicKeyPem,
      runRetention,
      close() {
        closed ??= (async () => {
          if (timer) clearInterval(timer);
          if (partitionTimer) clearInterval(partitionTimer);
          await probes?.close();
          await app.close();
          if (ownsDb) await db.close();
        })();
        return closed;
      },
    };
  } catch (err) {
    if (ownsDb) await db.close().catch(() => {});
    throw err;
  }
}
