import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';

/** Responses larger than this are refused: a JWKS or discovery document is a few KB. */
const MAX_BODY = 1024 * 1024;

export interface GetJsonOptions {
  ca?: string | Buffer | undefined;
  bearerToken?: string | undefined;
  timeoutMs?: number;
}

/**
 * GET a JSON document with a bounded size and time. node:https rather than fetch because
 * fetch on Node 20 cannot take a private CA without a direct undici dependency.
 */
export function getJson(url: URL, opts: GetJsonOptions = {}): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      reject(new Error(`unsupported URL scheme ${url.protocol}`));
      return;
    }
    const req = request(
      url,
      {
        method: 'GET',
        headers: {
          // kube-apiserver serves its JWKS only as application/jwk-set+json (406 otherwise).
          accept: 'application/json, application/jwk-set+json',
          ...(opts.bearerToken ? { authorization: `Bearer ${opts.bearerToken}` } : {}),
        },
        ...(opts.ca ? { ca: opts.ca } : {}),
        timeout: opts.timeoutMs ?? 5000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_BODY) {
            req.destroy(new Error(`response from ${url.origin} larger than ${MAX_BODY} bytes`));
            return;
          }
          chunks.push(c);
        });
        res.on('end', () => {
          if (res.statusCode !== 200) {
            reject(new Error(`GET ${url.origin}${url.pathname} answered ${res.statusCode}`));
            return;
          }
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
          } catch (err) {
            reject(
              new Error(`GET ${url.origin}${url.pathname} returned invalid JSON`, { cause: err }),
            );
          }
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`GET ${url.origin} timed out`)));
    req.on('error', reject);
    req.end();
  });
}
