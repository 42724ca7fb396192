import { request } from 'node:https';

/** One of the two servers under comparison, as the scenarios see it. */
export interface Side {
  name: string;
  url: string;
  issuer: string;
  caPem: string;
  adminToken: string;
  /** The admin credential's user name (normalised to ADMIN in outcomes). */
  adminUser: string;
  kubeconfigPath: string;
  /** The ServiceAccount signing key, to forge tokens with the server's own key. */
  signingKeyPem: string;
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json(): unknown;
}

/** One HTTPS request, as a client library sends it. `token: null` sends no credential. */
export function call(
  s: Side,
  method: string,
  path: string,
  opts: {
    body?: string;
    contentType?: string;
    token?: string | null;
    accept?: string;
    headers?: Record<string, string>;
  } = {},
): Promise<RawResponse> {
  const token = opts.token === undefined ? s.adminToken : opts.token;
  const headers: Record<string, string> = {
    accept: opts.accept ?? 'application/json',
    ...opts.headers,
  };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (opts.body !== undefined) {
    headers['content-type'] = opts.contentType ?? 'application/json';
    headers['content-length'] = String(Buffer.byteLength(opts.body));
  }
  return new Promise((resolve, reject) => {
    const req = request(
      new URL(path, s.url),
      { method, ca: s.caPem, headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text,
            json: () => JSON.parse(text) as unknown,
          });
        });
        res.on('error', reject);
      },
    );
    req.setTimeout(30_000, () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', reject);
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

/** A streaming watch; `ready` resolves on the response headers. */
export function watch(
  s: Side,
  path: string,
  onEvent: (e: { type: string; object: unknown }) => void,
): { ready: Promise<void>; close(): void } {
  let close = () => {};
  const ready = new Promise<void>((resolve, reject) => {
    const req = request(
      new URL(path, s.url),
      {
        ca: s.caPem,
        headers: { authorization: `Bearer ${s.adminToken}`, accept: 'application/json' },
        agent: false,
      },
      (res) => {
        let buf = '';
        res.on('data', (c: Buffer) => {
          buf += c.toString();
          let i;
          while ((i = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, i).trim();
            buf = buf.slice(i + 1);
            if (line) onEvent(JSON.parse(line) as { type: string; object: unknown });
          }
        });
        res.on('error', () => {});
        resolve();
      },
    );
    req.on('error', (err) => reject(err));
    req.end();
    close = () => req.destroy();
  });
  return { ready, close: () => close() };
}
