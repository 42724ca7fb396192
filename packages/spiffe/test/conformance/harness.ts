// The Precinct SPIFFE SDK's harness for the SPIFFE SDK conformance suite (harness contract
// v1, arndt-s/spiffe-conformance-test-suite docs/HARNESS_CONTRACT.md). A thin shim: every
// SPIFFE decision (endpoint discovery, streams, SVID and bundle selection, certificate and
// token validation) is made by the SDK; authorization is "any", as the contract requires.
//
// stdout carries only the contract's lines; everything else goes to stderr.
import * as http from 'node:http';
import * as tls from 'node:tls';
import {
  authorizeAny,
  peerSpiffeId,
  spiffeServer,
  tlsClientOptions,
  tlsServerOptions,
  parseAndValidateJwtSvid,
} from '../../src/index.js';
import { X509Source, JwtSource } from '../../src/workloadapi.js';

const MAX_BODY = 1 << 20;
const log = (msg: string, extra?: unknown) =>
  process.stderr.write(`harness: ${msg}${extra === undefined ? '' : ` ${describe(extra)}`}\n`);

function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: string }).code;
    return `${code ? `[${code}] ` : ''}${err.message}`;
  }
  return String(err);
}

type Envelope = { status: 'ok' | 'rejected' | 'error' | 'unsupported'; message?: string } & Record<
  string,
  unknown
>;
const HTTP_STATUS = { ok: 200, rejected: 422, error: 500, unsupported: 501 } as const;

function send(res: http.ServerResponse, body: Envelope): void {
  const json = JSON.stringify(body);
  res.writeHead(HTTP_STATUS[body.status], {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(json),
  });
  res.end(json);
}

async function readJson(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new Error('request body too large');
    chunks.push(chunk as Buffer);
  }
  const parsed: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new Error('request body must be a JSON object');
  }
  return parsed as Record<string, unknown>;
}

/** True for errors that mean "the SDK refused the peer", as opposed to "could not try". */
function isAuthenticationFailure(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  if (typeof code !== 'string') return false;
  if (code.startsWith('ERR_') && (err as Error).name === 'SpiffeError') return true;
  // OpenSSL's verdicts on the chain (the SDK's client options use it as a pre-filter).
  return /CERT|SELF_SIGNED|UNABLE_TO|VERIFY|ALTNAME|CHAIN|ISSUER|SIGNATURE/.test(code);
}

async function main(): Promise<void> {
  // No address is passed: the SDK discovers SPIFFE_ENDPOINT_SOCKET itself (contract 2.1).
  const logger = {
    warn: (obj: object, msg: string) => log(`${msg} ${JSON.stringify(obj)}`),
    debug: (obj: object, msg: string) => log(`${msg} ${JSON.stringify(obj)}`),
  };
  const x509 = await X509Source.create({ timeoutMs: 24 * 3600_000, logger });
  x509.on('watchError', (e: { error: unknown }) => log('x509 watch:', e.error));
  // JWT bundles are watched from the start but not waited for: READY needs only an SVID.
  const jwtReady = JwtSource.create({ timeoutMs: 24 * 3600_000, logger });
  jwtReady.then(
    (s) => s.on('watchError', (e: { error: unknown }) => log('jwt watch:', e.error)),
    (err) => log('jwt source failed:', err),
  );

  // X.509 port (contract 3).
  const serverOpts = tlsServerOptions(x509, x509, authorizeAny(), { minVersion: 'TLSv1.2' });
  const tlsServer = spiffeServer(
    tls.createServer(serverOpts, (socket) => {
      socket.on('error', () => undefined);
      const id = peerSpiffeId(socket);
      socket.end(id ? `${String(id)}\n` : '');
    }),
    serverOpts,
  );
  tlsServer.on('spiffeError', (err: unknown) => log('x509 port refused a peer:', err));
  tlsServer.on('tlsClientError', (err: unknown) => log('x509 port handshake failed:', err));

  // Control port (contract 4).
  const control = http.createServer((req, res) => {
    handle(req, res).catch((err) => send(res, { status: 'error', message: describe(err) }));
  });
  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method === 'GET' && path === '/v1/info') {
      return send(res, {
        status: 'ok',
        sdk: '@precinct/spiffe',
        sdk_version: '0.1.0',
        language: 'typescript',
      });
    }
    if (req.method !== 'POST') return send(res, { status: 'error', message: 'POST only' });
    let body: Record<string, unknown>;
    try {
      body = await readJson(req);
    } catch (err) {
      return send(res, { status: 'error', message: describe(err) });
    }
    if (path === '/v1/jwt/validate') {
      const { token, audience } = body;
      if (typeof token !== 'string' || typeof audience !== 'string') {
        return send(res, { status: 'error', message: 'token and audience must be strings' });
      }
      const source = await jwtReady;
      try {
        const svid = parseAndValidateJwtSvid(token, source, [audience]);
        return send(res, { status: 'ok', spiffe_id: String(svid.id), claims: svid.claims });
      } catch (err) {
        if (isAuthenticationFailure(err))
          return send(res, { status: 'rejected', message: describe(err) });
        throw err;
      }
    }
    if (path === '/v1/jwt/fetch') {
      const audience = body.audience;
      const spiffeId = typeof body.spiffe_id === 'string' ? body.spiffe_id : '';
      if (
        !Array.isArray(audience) ||
        audience.length === 0 ||
        !audience.every((a) => typeof a === 'string')
      ) {
        return send(res, { status: 'error', message: 'audience must be a non-empty string array' });
      }
      const source = await jwtReady;
      const [first, ...rest] = audience as string[];
      const svids = await source.fetchJwtSvids({
        audience: first!,
        extraAudiences: rest,
        ...(spiffeId ? { subject: spiffeId } : {}),
      });
      return send(res, {
        status: 'ok',
        svids: svids.map((s) => ({ spiffe_id: String(s.id), token: s.token, hint: s.hint ?? '' })),
      });
    }
    if (path === '/v1/x509/dial') {
      const address = body.address;
      const m = typeof address === 'string' ? /^(.+):(\d+)$/.exec(address) : null;
      if (!m) return send(res, { status: 'error', message: 'address must be host:port' });
      const host = m[1]!.replace(/^\[(.*)\]$/, '$1');
      const result = await dial(host, Number(m[2]));
      return send(res, result);
    }
    return send(res, { status: 'error', message: `no such endpoint ${path}` });
  };

  const dial = (host: string, port: number): Promise<Envelope> =>
    new Promise((resolve) => {
      const socket = tls.connect({ ...tlsClientOptions(x509, x509, authorizeAny()), host, port });
      const timer = setTimeout(() => {
        socket.destroy();
        resolve({ status: 'error', message: 'dial timed out' });
      }, 10_000);
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        const id = peerSpiffeId(socket);
        socket.destroy();
        resolve(
          id
            ? { status: 'ok', spiffe_id: String(id) }
            : { status: 'rejected', message: 'no peer ID' },
        );
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        socket.destroy();
        resolve(
          isAuthenticationFailure(err)
            ? { status: 'rejected', message: describe(err) }
            : { status: 'error', message: describe(err) },
        );
      });
    });

  const listen = (server: http.Server | tls.Server) =>
    new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
    });
  const x509Port = await listen(tlsServer);
  const controlPort = await listen(control);
  process.stdout.write(
    `SPIFFE_HARNESS_VERSION=1\nSPIFFE_X509_PORT=${x509Port}\nSPIFFE_CONTROL_PORT=${controlPort}\nREADY\n`,
  );

  const shutdown = () => {
    tlsServer.close();
    control.close();
    control.closeAllConnections();
    void x509.close();
    void jwtReady.then(
      (s) => s.close(),
      () => undefined,
    );
    setTimeout(() => process.exit(0), 200).unref();
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}

main().catch((err) => {
  log('fatal:', err);
  process.exit(1);
});
