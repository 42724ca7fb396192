import { checkServerIdentity } from 'node:tls';
import { request } from 'node:https';
import { startKubeDev, type KubeDev } from '@precinct/kube-dev';

/** kube-dev on 127.0.0.1 and a free port, kubeconfig in a temp dir. */
export function startTestKubeDev(opts: { dataDir?: string } = {}): Promise<KubeDev> {
  return startKubeDev({
    listen: { host: '127.0.0.1', port: 0 },
    advertiseHost: '127.0.0.1',
    ...opts,
  });
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json(): Record<string, unknown>;
}

/** One HTTPS request to kube-dev, trusting its CA. `token: null` sends no Authorization. */
export function call(
  kd: Pick<KubeDev, 'url' | 'caPem' | 'adminToken'>,
  method: string,
  path: string,
  opts: {
    body?: string | Buffer;
    contentType?: string;
    token?: string | null;
    headers?: Record<string, string | string[]>;
    /** The name the server certificate is checked against; default: the URL's host. */
    servername?: string;
  } = {},
): Promise<RawResponse> {
  const url = new URL(path, kd.url);
  const token = opts.token === undefined ? kd.adminToken : opts.token;
  const headers: Record<string, string | string[]> = { ...opts.headers };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (opts.body !== undefined) {
    headers['content-type'] = opts.contentType ?? 'application/json';
    headers['content-length'] = String(Buffer.byteLength(opts.body));
  }
  return new Promise((resolve, reject) => {
    const tlsName = opts.servername ? { servername: opts.servername } : {};
    const req = request(url, { method, ca: kd.caPem, headers, agent: false, ...tlsName }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          text,
          json: () => JSON.parse(text) as Record<string, unknown>,
        });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

/** Polls `fn` until it returns a truthy value (event-driven tests, no fixed sleeps). */
export async function eventually<T>(
  fn: () => T | null | undefined | false,
  what: string,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Whether this Node's TLS matches an IPv6 host against an IP Address SAN: Node 22.23 and
 * 24.17+ do not (nodejs/node#64144, a regression fixed upstream), which no server can work
 * around; tests that need it say so instead of failing.
 */
export function matchesIpv6San(): boolean {
  return (
    checkServerIdentity('::1', {
      subject: {},
      subjectaltname: 'IP Address:0:0:0:0:0:0:0:1',
    } as Parameters<typeof checkServerIdentity>[1]) === undefined
  );
}
