import { createHash, X509Certificate } from 'node:crypto';
import * as https from 'node:https';
import type { Socket } from 'node:net';
import * as tls from 'node:tls';
import { SpiffeError } from '../errors.js';
import type { Authorizer } from './authorizer.js';
import {
  canListBundles,
  revisionOf,
  svidKeyMaterial,
  trustAnchorsPem,
  verifyPeerChain,
  type SpiffeId,
  type X509BundleSourceLike,
  type X509SvidLike,
  type X509SvidSourceLike,
} from './core.js';

// Why the design looks like this
// ------------------------------
// Node's TLS stack checks host names, not SPIFFE IDs in URI SANs, and has no per-connection
// certificate-verification callback. So the SPIFFE checks (chain to the bundle of the peer's
// own trust domain, X.509-SVID rules, authorizer) run in JavaScript, at the one point on each
// side where Node still holds the connection back from the application:
//
// - Client: `checkServerIdentity`. Node calls it inside the handshake-completion path, before
//   'secureConnect' is emitted and before any queued application write is flushed; an error
//   destroys the socket (`rejectUnauthorized: true`). Node only calls it once OpenSSL accepted
//   the chain, so OpenSSL gets the union of all trust anchors as `ca` (a pre-filter that can
//   only refuse); the authoritative check is ours, against the peer trust domain's bundle
//   only. Session resumption (which skips the hook) is disabled (`maxCachedSessions: 0`),
//   and each options object brings its own https agent, because Node pools connections by
//   host and certificates, not by verification callback.
// - Server: Node emits 'secureConnection' when the handshake is done; nothing reads from or
//   writes to the socket before a listener does. `spiffeServer()` intercepts that event, runs
//   the checks, and hands only authenticated sockets to the application (http, http2,
//   fastify...), destroying the rest unread. Without `spiffeServer()` the options fail
//   closed: OpenSSL is told to trust a CA that signs nothing.
//   Under `spiffeServer()` OpenSSL's own verdict is ignored, but its `ca` list still matters:
//   OpenSSL sends those subjects as the acceptable client CAs (certificate_authorities in
//   the CertificateRequest), and standard clients (Go crypto/tls with static Certificates,
//   Java key managers, curl, openssl s_client with several certs) send only a certificate
//   issued under one of them. So the server advertises the anchors of every trust domain
//   it trusts (or, for a bundle source that cannot list its bundles, an empty list, which
//   means "any"); advertising changes nothing about what is accepted.
//
// Rotation: the client options read the current SVID and anchors through getters, on every
// connect. The server refreshes its secure context in a 'connection' listener, i.e. before
// the TLS handshake of each new connection, so a rotated SVID or a changed bundle (rotation,
// a federated trust domain added or removed) is in effect with no restart, and an unusable
// source (closed, expired, PermissionDenied) drops new connections.

/**
 * A self-signed certificate whose private key was discarded when it was generated: it signs
 * nothing, so a server built from `tlsServerOptions()` without `spiffeServer()` refuses
 * every client instead of accepting everyone.
 */
const TRUST_NOTHING_CA = `-----BEGIN CERTIFICATE-----
MIIBxzCCAW2gAwIBAgIUCDl/Zbyupt0YEb9nW2GnBSqquukwCgYIKoZIzj0EAwIw
ODE2MDQGA1UEAwwtcHJlY2luY3QgdHJ1c3Qtbm90aGluZyBhbmNob3IgKGtleSBk
aXNjYXJkZWQpMCAXDTI2MTEyMzA3MTM1M1oYDzIxMjYxMDMwMDcxMzUzWjA4MTYw
NAYDVQQDDC1wcmVjaW5jdCB0cnVzdC1ub3RoaW5nIGFuY2hvciAoa2V5IGRpc2Nh
cmRlZCkwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAARwyWdhTDgjiSsNhi6MVQjA
msgQJ6Kk05R4LcxjUAsB4qfnQYlV5AjC84uCqZfbh2UimC7q29yuhfrjcevAU06u
o1MwUTAdBgNVHQ4EFgQU4cSZCwqcelrnjd169VIUdZT7ehEwHwYDVR0jBBgwFoAU
4cSZCwqcelrnjd169VIUdZT7ehEwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQD
AgNIADBFAiEA7eIUjbJSyo9MzS6isycm6QbVkUnMsqJDbXGzT7h8npACICZ0cQdx
PMWoTzYKq/GKQSJiIUkgj/aZ9VZb3ICIzhXq
-----END CERTIFICATE-----
`;

const kSpiffe = Symbol.for('precinct.spiffe.tls');
const kGuarded = Symbol.for('precinct.spiffe.tls.guarded');

interface ServerState {
  svidSource: X509SvidSourceLike;
  bundleSource: X509BundleSourceLike;
  authorizer: Authorizer;
  base: tls.SecureContextOptions;
}

/** Options for `tls.createServer`, `https.createServer`, `http2.createSecureServer`. */
export type SpiffeTlsServerOptions = tls.TlsOptions & { readonly [kSpiffe]: ServerState };

/** Options for `tls.connect`, `https.request`, `http2.connect` and undici `connect`. */
export type SpiffeTlsClientOptions = tls.ConnectionOptions & {
  /** For undici: no TLS session resumption (it would skip the SPIFFE check). */
  maxCachedSessions: number;
  /**
   * For `https.request`: a keep-alive agent of these options alone. Node's agents pool
   * connections by host and certificates, not by verification callback, so a shared agent
   * could hand a connection checked under one authorizer to a request made under another.
   */
  agent: https.Agent;
};

export interface TlsExtraOptions {
  /** Lowest TLS version (default TLSv1.2; TLS 1.3 is preferred when both sides have it). */
  minVersion?: tls.SecureVersion;
  /** ALPN protocols, e.g. ['h2'] for http2 or ['http/1.1']. */
  ALPNProtocols?: string[];
}

// Verified peer IDs. Server sockets carry theirs as a symbol property (readable through the
// socket proxies http2 hands out); client checks only see the certificate, so they are keyed
// by its SHA-256 fingerprint (bounded).
const kPeerId = Symbol('precinct.spiffe.peerId');
const clientPeers = new Map<string, SpiffeId>();
const CLIENT_PEERS_MAX = 1024;

function rememberClientPeer(fp: string, id: SpiffeId): void {
  if (clientPeers.has(fp)) clientPeers.delete(fp);
  clientPeers.set(fp, id);
  if (clientPeers.size > CLIENT_PEERS_MAX) {
    clientPeers.delete(clientPeers.keys().next().value as string);
  }
}

/** The DER chain (leaf first, self-signed anchors left out) of a detailed peer certificate. */
function chainOf(cert: tls.DetailedPeerCertificate | tls.PeerCertificate | undefined): Buffer[] {
  const out: Buffer[] = [];
  const seen = new Set<string>();
  let c = cert as tls.DetailedPeerCertificate | undefined;
  while (c && c.raw && !seen.has(c.fingerprint256)) {
    seen.add(c.fingerprint256);
    // Node may append the self-signed anchor it found in `ca`; anchors must come from the
    // bundle of the peer's trust domain, never from the peer, so it is left out.
    const selfSigned = c.issuerCertificate?.fingerprint256 === c.fingerprint256;
    if (selfSigned && out.length > 0) break;
    out.push(c.raw);
    c = c.issuerCertificate;
  }
  return out;
}

// Verdicts of the (deterministic) SPIFFE verification, so a peer that reconnects with the
// same chain costs a hash lookup instead of signature checks. A hit is used only while the
// bundle object of the peer's trust domain is the very one it was verified against (any
// bundle update replaces it) and the chain is inside its validity window; the authorizer
// always runs again.
interface Verdict {
  id: SpiffeId;
  verifiedChain: readonly Buffer[];
  bundle: object;
  revision: number;
  notBefore: number;
  notAfter: number;
}
const verdicts = new WeakMap<object, Map<string, Verdict>>();
const VERDICTS_MAX = 256;

function chainKey(chain: Buffer[]): string {
  const h = createHash('sha256');
  for (const c of chain) h.update(c);
  return h.digest('base64');
}

function validityWindow(chain: Buffer[]): { notBefore: number; notAfter: number } {
  let notBefore = -Infinity;
  let notAfter = Infinity;
  for (const der of chain) {
    const c = new X509Certificate(der);
    notBefore = Math.max(notBefore, Date.parse(c.validFrom));
    notAfter = Math.min(notAfter, Date.parse(c.validTo));
  }
  return { notBefore, notAfter };
}

/**
 * Verifies a peer chain as an X.509-SVID of its own trust domain (by the core's X.509-SVID
 * verification) and authorizes it. Throws a SpiffeError: the core's verification codes,
 * ERR_TLS_NO_PEER_CERTIFICATE or ERR_TLS_UNAUTHORIZED.
 */
export function authenticatePeer(
  chain: Buffer[],
  bundleSource: X509BundleSourceLike,
  authorizer: Authorizer,
): SpiffeId {
  if (chain.length === 0) {
    throw new SpiffeError('ERR_TLS_NO_PEER_CERTIFICATE', 'tls: peer presented no certificate');
  }
  let cache = verdicts.get(bundleSource);
  if (!cache) verdicts.set(bundleSource, (cache = new Map()));
  const key = chainKey(chain);
  const now = Date.now();
  let v = cache.get(key);
  if (v) {
    let current: object | undefined;
    try {
      current = bundleSource.getX509BundleForTrustDomain(v.id.trustDomain) as object;
    } catch {
      current = undefined;
    }
    if (
      current !== v.bundle ||
      revisionOf(current) !== v.revision ||
      now < v.notBefore ||
      now > v.notAfter
    ) {
      cache.delete(key);
      v = undefined;
    }
  }
  if (!v) {
    const { id, verifiedChain } = verifyPeerChain(chain, bundleSource);
    const bundle = bundleSource.getX509BundleForTrustDomain(id.trustDomain) as object;
    v = { id, verifiedChain, bundle, revision: revisionOf(bundle), ...validityWindow(chain) };
    if (cache.size >= VERDICTS_MAX) cache.delete(cache.keys().next().value as string);
    cache.set(key, v);
  }
  if (!authorizer(v.id, v.verifiedChain)) {
    throw new SpiffeError('ERR_TLS_UNAUTHORIZED', `tls: peer ${String(v.id)} is not authorized`);
  }
  return v.id;
}

function currentSvid(source: X509SvidSourceLike): X509SvidLike {
  return source.getX509Svid();
}

/**
 * mTLS server options: present the source's current X.509-SVID, require a client SVID.
 * Pass the created server to {@link spiffeServer}, which authenticates every client against
 * the bundle of the client's own trust domain and the authorizer before the application
 * sees the connection.
 */
export function tlsServerOptions(
  svidSource: X509SvidSourceLike,
  bundleSource: X509BundleSourceLike,
  authorizer: Authorizer,
  extra: TlsExtraOptions = {},
): SpiffeTlsServerOptions {
  const svid = currentSvid(svidSource);
  const { certPem, keyPem } = svidKeyMaterial(svid);
  const base: tls.SecureContextOptions = {
    minVersion: extra.minVersion ?? 'TLSv1.2',
    ca: TRUST_NOTHING_CA,
  };
  const state: ServerState = { svidSource, bundleSource, authorizer, base };
  return {
    ...base,
    cert: certPem,
    key: keyPem,
    requestCert: true,
    // Until spiffeServer() takes over, OpenSSL enforces the trust-nothing CA (fail closed).
    rejectUnauthorized: true,
    ...(extra.ALPNProtocols ? { ALPNProtocols: extra.ALPNProtocols } : {}),
    [kSpiffe]: state,
  };
}

/**
 * Installs SPIFFE authentication and SVID rotation on a server created with
 * {@link tlsServerOptions} (`tls.Server`, `https.Server`, `http2.Http2SecureServer`).
 * Call it before `listen()`. Returns the server.
 */
export function spiffeServer<S extends tls.Server>(server: S, options: SpiffeTlsServerOptions): S {
  const state = options[kSpiffe];
  if (!state) throw new TypeError('spiffeServer: options must come from tlsServerOptions()');
  const guarded = server as S & { [kGuarded]?: boolean; rejectUnauthorized?: boolean };
  if (guarded[kGuarded]) return server;
  guarded[kGuarded] = true;
  // OpenSSL cannot check SPIFFE IDs or pick the bundle by the peer's trust domain: it lets
  // every client certificate through and the 'secureConnection' gate below decides.
  guarded.rejectUnauthorized = false;

  const listsBundles = canListBundles(state.bundleSource);
  // The acceptable client CAs: '' when the source cannot list them (advertise none).
  const clientCas = () => (listsBundles ? trustAnchorsPem(state.bundleSource) : '');
  const context = (svid: X509SvidLike, cas: string): tls.SecureContextOptions => {
    const { ca: _placeholder, ...rest } = state.base;
    return { ...rest, ...(cas ? { ca: cas } : {}), ...svidKeyMaterialTls(svid) };
  };
  let served: X509SvidLike = currentSvid(state.svidSource);
  let servedCas = clientCas();
  server.setSecureContext(context(served, servedCas));

  // Runs before tls.Server's own 'connection' listener creates the TLSSocket, so the context
  // set here is the one this connection's handshake uses.
  server.prependListener('connection', (raw: Socket) => {
    let svid: X509SvidLike;
    let cas: string;
    try {
      svid = currentSvid(state.svidSource);
      cas = clientCas();
    } catch (err) {
      server.emit('spiffeError', err, raw);
      raw.destroy();
      return;
    }
    // trustAnchorsPem returns the same string object while the bundles are unchanged.
    if (svid !== served || cas !== servedCas) {
      served = svid;
      servedCas = cas;
      server.setSecureContext(context(svid, cas));
    }
  });

  const emit = server.emit.bind(server);
  server.emit = function (event: string | symbol, ...args: unknown[]): boolean {
    if (event !== 'secureConnection') return emit(event, ...args);
    const socket = args[0] as tls.TLSSocket;
    let id: SpiffeId;
    try {
      id = authenticatePeer(
        chainOf(socket.getPeerCertificate(true)),
        state.bundleSource,
        state.authorizer,
      );
    } catch (err) {
      // The client only learns that the connection closed; the reason is for the server.
      emit('spiffeError', err, socket);
      socket.destroy();
      return false;
    }
    Object.defineProperty(socket, kPeerId, { value: id });
    return emit(event, ...args);
  } as typeof server.emit;
  return server;
}

function svidKeyMaterialTls(svid: X509SvidLike): { cert: string; key: string } {
  const { certPem, keyPem } = svidKeyMaterial(svid);
  return { cert: certPem, key: keyPem };
}

function clientOptions(
  svidSource: X509SvidSourceLike | undefined,
  bundleSource: X509BundleSourceLike,
  authorizer: Authorizer,
  extra: TlsExtraOptions,
): SpiffeTlsClientOptions {
  let cache:
    { svid: X509SvidLike | undefined; anchors: string; ctx: tls.SecureContext } | undefined;
  const minVersion = extra.minVersion ?? 'TLSv1.2';
  const opts: SpiffeTlsClientOptions = {
    rejectUnauthorized: true,
    maxCachedSessions: 0,
    agent: new https.Agent({ keepAlive: true, maxCachedSessions: 0 }),
    checkServerIdentity: (_host: string, cert: tls.PeerCertificate) => {
      try {
        const id = authenticatePeer(chainOf(cert), bundleSource, authorizer);
        rememberClientPeer(cert.fingerprint256, id);
        return undefined;
      } catch (err) {
        return err as Error;
      }
    },
    ...(extra.ALPNProtocols ? { ALPNProtocols: extra.ALPNProtocols } : {}),
  };
  // Read on every connect: the current SVID and trust anchors, as one cached context that is
  // rebuilt only when either changed.
  Object.defineProperty(opts, 'secureContext', {
    enumerable: true,
    get(): tls.SecureContext {
      const svid = svidSource ? currentSvid(svidSource) : undefined;
      const anchors = trustAnchorsPem(bundleSource);
      if (!cache || cache.svid !== svid || cache.anchors !== anchors) {
        const ctx = tls.createSecureContext({
          minVersion,
          ca: anchors || TRUST_NOTHING_CA,
          ...(svid ? svidKeyMaterialTls(svid) : {}),
        });
        cache = { svid, anchors, ctx };
      }
      return cache.ctx;
    },
  });
  return opts;
}

/** mTLS client options: present the current X.509-SVID, authenticate the server's. */
export function tlsClientOptions(
  svidSource: X509SvidSourceLike,
  bundleSource: X509BundleSourceLike,
  authorizer: Authorizer,
  extra: TlsExtraOptions = {},
): SpiffeTlsClientOptions {
  return clientOptions(svidSource, bundleSource, authorizer, extra);
}

/** TLS client options that authenticate the server's X.509-SVID and present no certificate. */
export function tlsClientOptionsServerAuth(
  bundleSource: X509BundleSourceLike,
  authorizer: Authorizer,
  extra: TlsExtraOptions = {},
): SpiffeTlsClientOptions {
  return clientOptions(undefined, bundleSource, authorizer, extra);
}

/**
 * The authenticated SPIFFE ID of the peer of a socket set up with these helpers (server side:
 * the client's; client side: the server's), or undefined when it was not authenticated by
 * them.
 */
export function peerSpiffeId(socket: object | null | undefined): SpiffeId | undefined {
  if (!socket) return undefined;
  const fromServer = (socket as { [kPeerId]?: SpiffeId })[kPeerId];
  if (fromServer) return fromServer;
  const s = socket as tls.TLSSocket;
  if (typeof s.getPeerCertificate !== 'function' || s.authorized !== true) return undefined;
  const fp = s.getPeerCertificate()?.fingerprint256;
  return fp ? clientPeers.get(fp) : undefined;
}

/**
 * An undici `connect` function (for `new Agent({ connect })`) that builds fresh client
 * options on every connection, so a long-lived agent follows SVID rotation.
 */
export function undiciConnector(
  options: SpiffeTlsClientOptions,
): (
  opts: { hostname: string; host?: string; port: string | number; servername?: string | null },
  cb: (...args: [null, tls.TLSSocket] | [Error, null]) => void,
) => void {
  return (o, cb) => {
    let settled = false;
    const socket = tls.connect({
      ...options,
      host: o.hostname,
      port: Number(o.port) || 443,
      ...(o.servername ? { servername: o.servername } : {}),
    });
    socket.once('secureConnect', () => {
      if (settled) return;
      settled = true;
      cb(null, socket);
    });
    socket.once('error', (err) => {
      if (settled) return;
      settled = true;
      cb(err, null);
    });
  };
}
