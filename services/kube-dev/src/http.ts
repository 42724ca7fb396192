import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError, badRequest } from './errors.js';
import { decodeProtobufObject } from './protobuf.js';
import { duplicateFields, jsonDepth } from './schema.js';

/**
 * The wire side of kube-dev on `node:http`: bounded request bodies in JSON or protobuf, and
 * JSON responses and Kubernetes `Status` errors written as kube-apiserver writes them.
 */

/** Request bodies above this get 413, as kube-apiserver bounds them (3 MiB). */
const MAX_BODY_BYTES = 3 * 1024 * 1024;
/** kube-apiserver's JSON decoder stops at 10000 levels. */
const MAX_JSON_DEPTH = 10_000;
const PROTOBUF = 'application/vnd.kubernetes.protobuf';

/** Writes `body` as JSON with status `code`. */
export function send(res: ServerResponse, code: number, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(code, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(data),
    'Cache-Control': 'no-cache, private',
  });
  res.end(data);
}

/** Writes the error as a `Status`; a response already under way (a watch) is cut instead. */
export function sendError(res: ServerResponse, err: ApiError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  send(res, err.code, err.toStatus());
}

/** Reads the body with a size bound (413 above it, whatever Content-Length claims). */
export async function readBody(req: IncomingMessage): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) {
    req.resume();
    throw new ApiError(413, 'RequestEntityTooLarge', 'the request body is too large');
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY_BYTES) {
      req.resume();
      throw new ApiError(413, 'RequestEntityTooLarge', 'the request body is too large');
    }
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

/** The Content-Type without parameters, lower-cased (`''` when absent). */
export function mediaType(req: IncomingMessage): string {
  return (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
}

/** Duplicate keys of a parsed body (JSON.parse keeps the last), for field validation. */
const DUPLICATES = new WeakMap<object, string[]>();

/** The keys {@link parseJson} found more than once in the document that became `parsed`. */
export function duplicateKeys(parsed: object): string[] {
  return DUPLICATES.get(parsed) ?? [];
}

/** Parses a JSON body: 400 when it is not JSON or nested deeper than kube-apiserver allows. */
export function parseJson(buf: Buffer): unknown {
  const text = buf.toString('utf8');
  // Checked before parsing, so nothing downstream ever walks a deeper document.
  if (jsonDepth(text) > MAX_JSON_DEPTH)
    throw badRequest(`the request body is nested more than ${MAX_JSON_DEPTH} levels deep`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw badRequest('the request body is not valid JSON');
  }
  if (typeof value === 'object' && value !== null) {
    const dups = duplicateFields(text);
    if (dups.length) DUPLICATES.set(value, dups);
  }
  return value;
}

/** Reads an object body in JSON or protobuf; 415 for any other media type. */
export async function readJsonObject(req: IncomingMessage): Promise<Record<string, unknown>> {
  const type = mediaType(req);
  if (type === PROTOBUF) return decodeProtobufObject(await readBody(req));
  if (type !== 'application/json') {
    req.resume();
    throw new ApiError(
      415,
      'UnsupportedMediaType',
      `the body of the request was in an unknown format - accepted media types include: application/json, ${PROTOBUF}`,
    );
  }
  const body = parseJson(await readBody(req));
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw badRequest('the request body must be a JSON object');
  }
  return body as Record<string, unknown>;
}

/** Sends decoding problems as `Warning: 299 - "..."` headers, as kube-apiserver does. */
export function warn(res: ServerResponse, warnings: string[]): void {
  if (warnings.length === 0) return;
  res.setHeader(
    'Warning',
    warnings.map((p) => `299 - ${JSON.stringify(p)}`),
  );
}
