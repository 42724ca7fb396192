// The user service (the reference's 8082): people and direct access. A person's request
// arrives from the dashboard with the person's Transaction Token, which is checked here and
// forwarded unmodified to the document service; this service never names a person itself.
import { TXN_TOKEN_HEADER } from '@precinct/delegation';
import type { PolicyData } from '@precinct/policy';
import { createLogger, type Logger } from '@precinct/runtime';
import { sendProblem } from '@precinct/runtime/http';
import type { X509BundleSource, X509SvidSource } from '@precinct/spiffe';
import {
  ACCESS_SCHEMA,
  DOCUMENT_ID,
  MtlsClient,
  mtlsService,
  userSpiffeId,
  type ListenConfig,
  type ServiceHandle,
} from './common.js';
import { documentCatalog } from './document-service.js';
import { checkTxnToken, tokenHash, txnVerifier, type TokenServiceRef } from './txn.js';

export interface UserServiceOptions extends ListenConfig {
  svidSource: X509SvidSource;
  bundleSource: X509BundleSource;
  trustDomain: string;
  data: PolicyData;
  tokenService: TokenServiceRef;
  documentService: { url: string; spiffeId: string };
  /** SPIFFE IDs that may call (the dashboard). */
  callers: readonly string[];
  logger?: Logger;
}

export async function startUserService(o: UserServiceOptions): Promise<ServiceHandle> {
  const logger = o.logger ?? createLogger('user-service');
  const callers = new Set(o.callers);
  const svc = await mtlsService({
    ...o,
    name: 'user-service',
    allow: (id) => callers.has(id),
    logger,
  });
  const tokenClient = new MtlsClient(o.svidSource, o.bundleSource, o.tokenService.spiffeId);
  const docClient = new MtlsClient(o.svidSource, o.bundleSource, o.documentService.spiffeId);
  const verifier = txnVerifier(o.trustDomain, o.tokenService, tokenClient);
  const users = Object.entries(o.data.precinct.users).map(([id, u]) => ({
    id,
    name: String(u.name ?? id),
    departments: [...u.departments],
    spiffe_id: userSpiffeId(o.trustDomain, id),
  }));
  const catalog = documentCatalog(o.data);

  svc.app.get('/users', async () => users);
  svc.app.get('/users/:id', async (req, reply) => {
    const u = users.find((x) => x.id === (req.params as { id: string }).id);
    return u ?? sendProblem(reply, 'not_found');
  });
  svc.app.get('/documents', async () => catalog);

  svc.app.post('/access', { schema: ACCESS_SCHEMA }, async (req, reply) => {
    const documentId = (req.body as { document_id: string }).document_id;
    if (!DOCUMENT_ID.test(documentId)) return sendProblem(reply, 'bad_request', 'bad document_id');
    const check = await checkTxnToken(req, verifier, documentId);
    if (check.ok !== true) {
      const reason = check.ok === 'absent' ? 'txn_token_missing' : check.reason;
      logger.info({ reason }, 'direct access refused');
      if (check.ok === false && check.unavailable) return sendProblem(reply, 'unavailable');
      return sendProblem(reply, 'authentication_failed');
    }
    // Direct access is the person alone: a token that already names an agent is not for here.
    if (check.token.actor !== undefined) {
      logger.info({ reason: 'actor_present', txn: check.token.txn }, 'direct access refused');
      return sendProblem(reply, 'authorization_failed');
    }
    logger.debug(
      { txn: check.token.txn, token_sha256: tokenHash(check.raw) },
      'forwarding direct access',
    );
    let answer;
    try {
      answer = await docClient.json(`${o.documentService.url}/access`, {
        headers: { [TXN_TOKEN_HEADER]: check.raw },
        body: { document_id: documentId },
      });
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'document service unavailable');
      return sendProblem(reply, 'unavailable');
    }
    return reply.code(answer.status).send(answer.body);
  });

  const handle = await svc.start();
  return {
    ...handle,
    async close() {
      await handle.close();
      await Promise.all([tokenClient.close(), docClient.close()]);
    },
  };
}
