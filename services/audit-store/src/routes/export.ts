// Evidence: the chain of a correlation verified in place, and signed exports (NDJSON with a
// detached Ed25519 signature) that anyone can check offline with the public key.
import type { FastifyPluginAsync } from 'fastify';
import { sendProblem } from '@precinct/runtime/http';
import { signExport, type SigningKey } from '../export.js';
import type { AuditRepository, EventFilter } from '../store.js';
import type { RouteAccess } from '../http/auth.js';
import { checkRange, errorResponses } from '../http/problems.js';

export interface ExportRoutesOptions {
  repo: AuditRepository;
  access: RouteAccess;
  signingKey: SigningKey;
  /** Most events one export may hold (it is signed as a whole). */
  maxExportEvents: number;
}

/**
 * `POST /api/v1/audit/verify-chain`, `GET /api/v1/audit/export` and
 * `GET /api/v1/audit/export/public-key`.
 */
export const exportRoutes: FastifyPluginAsync<ExportRoutesOptions> = async (app, opts) => {
  const { repo } = opts;
  const { READ, PUBLIC } = opts.access;
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
            // An auditor's evidence of one person's, agent's or transaction's decisions.
            person: { type: 'string', minLength: 1, maxLength: 255 },
            agent: { type: 'string', minLength: 1, maxLength: 255 },
            txn: { type: 'string', minLength: 1, maxLength: 255 },
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
};
