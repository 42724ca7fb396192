// Transaction Tokens at each hop: verified against the token service's JWKS (fetched over mTLS
// from the token service itself), then checked to cover the document asked for.
import { createHash } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import {
  TXN_TOKEN_HEADER,
  TxnTokenError,
  createTxnTokenVerifier,
  type TxnToken,
  type TxnTokenVerifier,
} from '@precinct/delegation';
import { documentScope, type MtlsClient } from './common.js';

/** Where the token service is and who it is (its SPIFFE ID is also the tokens' `iss`). */
export interface TokenServiceRef {
  /** `https://host:port` of its mTLS endpoint. */
  url: string;
  spiffeId: string;
}

/** SHA-256 of a token, hex: what logs and audit events carry instead of the token. */
export const tokenHash = (token: string): string =>
  createHash('sha256').update(token).digest('hex');

export function txnVerifier(
  trustDomain: string,
  tokenService: TokenServiceRef,
  client: MtlsClient,
): TxnTokenVerifier {
  return createTxnTokenVerifier({
    trustDomain,
    issuer: tokenService.spiffeId,
    jwks: new URL('/.well-known/jwks.json', tokenService.url),
    fetch: client.fetch,
  });
}

export type TxnCheck =
  | { ok: true; token: TxnToken; raw: string }
  | { ok: false; reason: string; unavailable?: boolean }
  | { ok: 'absent' };

/** Reads and verifies the request's Txn-Token and that its scope covers reading `documentId`. */
export async function checkTxnToken(
  req: FastifyRequest,
  verifier: TxnTokenVerifier,
  documentId: string,
): Promise<TxnCheck> {
  const raw = req.headers[TXN_TOKEN_HEADER];
  if (raw === undefined) return { ok: 'absent' };
  if (typeof raw !== 'string') return { ok: false, reason: 'txn_token_repeated' };
  let token: TxnToken;
  try {
    token = await verifier.verify(raw);
  } catch (err) {
    const reason = err instanceof TxnTokenError ? `txn_token_${err.reason}` : 'txn_token_invalid';
    return {
      ok: false,
      reason,
      ...(err instanceof TxnTokenError && err.reason === 'jwks_unavailable'
        ? { unavailable: true }
        : {}),
    };
  }
  if (!token.scope.includes(documentScope(documentId))) {
    return { ok: false, reason: 'txn_token_scope' };
  }
  return { ok: true, token, raw };
}
