// What the store accepts as a request body and query: UTF-8 JSON only, every string checked
// for what the database cannot keep exactly as it was hashed, before schema validation.
import { createHash } from 'node:crypto';
import { isUtf8 } from 'node:buffer';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { checkStrings, mayHoldBadStrings, type InputProblem } from '../input.js';
import { ValidationProblem } from './problems.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** SHA-256 of the JSON body as received, when the request carries an Idempotency-Key. */
    bodyHash?: string;
    /** The JSON body may hold a string the store cannot keep (see `mayHoldBadStrings`). */
    suspectStrings?: boolean;
  }
}

/** Installs the JSON body parser and the string checks on the root of `app`. */
export function installBodyChecks(app: FastifyInstance): void {
  app.decorateRequest('bodyHash', undefined);
  app.decorateRequest('suspectStrings', false);
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
}
