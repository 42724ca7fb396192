// The records service: the secrets demo's backend (the SPIRE-Vault-99 seed's shape). It holds
// no database password: the composition hands it a database whose credentials are leased from
// OpenBao/Vault with the service's own JWT-SVID and rotated under it (`RotatingPool` of
// @precinct/secrets). When the lease cannot be renewed it reports not-ready, then answers 503:
// there is no static credential to fall back to, by construction.
import { Gauge } from 'prom-client';
import { createLogger, type Logger } from '@precinct/runtime';
import { sendProblem } from '@precinct/runtime/http';
import type { X509BundleSource, X509SvidSource } from '@precinct/spiffe';
import { mtlsService, type ListenConfig, type ServiceHandle } from './common.js';

/** The table the records service reads and writes. */
export const RECORDS_TABLE = 'precinct_records';

/**
 * What an administrator runs once (idempotent) before the service starts: the table and a few
 * rows. Leased roles get only `RECORDS_GRANTS`, never ownership.
 */
export const RECORDS_SCHEMA: readonly string[] = [
  `CREATE TABLE IF NOT EXISTS ${RECORDS_TABLE} (
    id bigserial PRIMARY KEY,
    title text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
  )`,
  `INSERT INTO ${RECORDS_TABLE} (title, created_by)
    SELECT t, 'precinct up' FROM unnest(ARRAY['first record', 'second record', 'third record']) AS t
    WHERE NOT EXISTS (SELECT 1 FROM ${RECORDS_TABLE})`,
];

/**
 * The grants of each leased PostgreSQL role (`{{name}}` is the role the secrets manager
 * creates): read and append, no update, no delete, no DDL.
 */
export const RECORDS_GRANTS: readonly string[] = [
  `GRANT SELECT, INSERT ON ${RECORDS_TABLE} TO "{{name}}";`,
  `GRANT USAGE ON SEQUENCE ${RECORDS_TABLE}_id_seq TO "{{name}}";`,
];

/**
 * The database the service queries. `RotatingPool` of @precinct/secrets fits (adapted by the
 * composition); a query rejects once the credentials expired.
 */
export interface RecordsDatabase {
  query(text: string, values?: unknown[]): Promise<{ rows: Array<Record<string, unknown>> }>;
  /** False when the credentials are about to expire and could not be replaced. */
  ready(): boolean;
  /** When the credentials in use expire, ms since the epoch (the lease). */
  credentialsExpireAt(): number;
  /** How many times the credentials were replaced (rotations). */
  rotations(): number;
}

export interface RecordsServiceOptions extends ListenConfig {
  svidSource: X509SvidSource;
  bundleSource: X509BundleSource;
  database: RecordsDatabase;
  /** SPIFFE IDs that may call. */
  callers: readonly string[];
  logger?: Logger;
}

/** Unix time (s) the database credentials expire: `precinct status` shows it. */
export const LEASE_EXPIRY_METRIC = 'precinct_records_db_lease_expiry_seconds';
/** Credential rotations so far. */
export const ROTATIONS_METRIC = 'precinct_records_db_rotations';

const ID = /^[1-9][0-9]{0,15}$/;

// Response schemas: only these fields ever leave the service.
const RECORD = {
  type: 'object',
  required: ['id', 'title', 'created_by', 'created_at'],
  additionalProperties: false,
  properties: {
    id: { type: 'string' },
    title: { type: 'string' },
    created_by: { type: 'string' },
    created_at: { type: 'string' },
  },
} as const;
const LIST = {
  type: 'object',
  required: ['records', 'served_as'],
  additionalProperties: false,
  properties: { records: { type: 'array', items: RECORD }, served_as: { type: 'string' } },
} as const;
// Timestamps as ISO 8601 text from PostgreSQL, the same in the list and in one record.
const COLUMNS = `id::text AS id, title, created_by, to_json(created_at)#>>'{}' AS created_at`;
const LIST_LIMIT = 100;

/**
 * Starts the records service (mTLS, callers on an allow-list): `GET /records` (the latest 100,
 * and `served_as`, the leased PostgreSQL role that answered: not a secret, it shows rotations),
 * `GET /records/:id`, `POST /records {title}` (`created_by` is the caller's verified SPIFFE ID).
 * `/ready` on the probe port includes the database credentials.
 */
export async function startRecordsService(o: RecordsServiceOptions): Promise<ServiceHandle> {
  const logger = o.logger ?? createLogger('records-service');
  const callers = new Set(o.callers);
  const db = o.database;
  const svc = await mtlsService({
    ...o,
    name: 'records-service',
    allow: (id) => callers.has(id),
    logger,
    ready: { database: () => db.ready() },
  });
  new Gauge({
    name: LEASE_EXPIRY_METRIC,
    help: 'When the leased database credentials in use expire (unix seconds)',
    registers: [svc.registry],
    collect() {
      this.set(db.credentialsExpireAt() / 1000);
    },
  });
  new Gauge({
    name: ROTATIONS_METRIC,
    help: 'Database credential rotations since start',
    registers: [svc.registry],
    collect() {
      this.set(db.rotations());
    },
  });

  // Any database failure is the client's 503: expired credentials (secrets manager down past
  // the lease) or PostgreSQL itself. The code (never the message: pg quotes SQL) goes to the log.
  const unavailable = (reply: Parameters<typeof sendProblem>[0], err: unknown) => {
    logger.warn({ code: (err as { code?: string }).code ?? 'error' }, 'database unavailable');
    return sendProblem(reply, 'unavailable');
  };

  svc.app.get('/records', { schema: { response: { 200: LIST } } }, async (_req, reply) => {
    try {
      const r = await db.query(
        `SELECT current_user AS served_as,
          (SELECT coalesce(json_agg(x ORDER BY x.id::bigint), '[]'::json) FROM (
            SELECT ${COLUMNS} FROM ${RECORDS_TABLE}
            ORDER BY id DESC LIMIT ${LIST_LIMIT}) x) AS records`,
      );
      const row = r.rows[0] ?? {};
      return { records: row.records ?? [], served_as: row.served_as };
    } catch (err) {
      return unavailable(reply, err);
    }
  });

  svc.app.get('/records/:id', { schema: { response: { 200: RECORD } } }, async (req, reply) => {
    const id = (req.params as { id: string }).id;
    if (!ID.test(id)) return sendProblem(reply, 'bad_request', 'id must be a positive integer');
    try {
      const r = await db.query(`SELECT ${COLUMNS} FROM ${RECORDS_TABLE} WHERE id = $1`, [id]);
      return r.rows[0] ?? sendProblem(reply, 'not_found');
    } catch (err) {
      return unavailable(reply, err);
    }
  });

  svc.app.post(
    '/records',
    {
      schema: {
        body: {
          type: 'object',
          required: ['title'],
          additionalProperties: false,
          properties: { title: { type: 'string', minLength: 1, maxLength: 200 } },
        },
        response: { 201: RECORD },
      },
      // Fastify's validator drops unknown fields silently; an unknown field is refused instead.
      preValidation: async (req, reply) => {
        const body = req.body;
        if (body && typeof body === 'object' && Object.keys(body).some((k) => k !== 'title')) {
          return sendProblem(reply, 'bad_request', 'only "title" is accepted');
        }
      },
    },
    async (req, reply) => {
      const title = (req.body as { title: string }).title;
      try {
        const r = await db.query(
          `INSERT INTO ${RECORDS_TABLE} (title, created_by) VALUES ($1, $2)
            RETURNING ${COLUMNS}`,
          [title, req.spiffeId!.toString()],
        );
        return reply.code(201).send(r.rows[0]);
      } catch (err) {
        return unavailable(reply, err);
      }
    },
  );

  return svc.start();
}
