// A real OpenID Provider for the dashboard's OIDC tests: panva's oidc-provider on loopback with
// its own (development) interactive login and consent pages, PKCE required, a few people. A
// test can also drive it without a browser (`authorize`), act as any registered client to get
// genuine ID tokens (`mintIdToken`), and make the token endpoint answer with another ID token
// than the one it issued (`swapIdToken`), as a compromised or mixed-up provider would.
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider from 'oidc-provider';

export const DASHBOARD_CLIENT = 'precinct-dashboard';

export interface Account {
  groups?: string[];
}

export interface OidcPeer {
  issuer: string;
  /** Registers the clients (the dashboard's redirect URI is known only once it listens). */
  start(redirectUri: string): void;
  clientSecret(clientId: string): string;
  /** ID tokens issued from now on live this many seconds (default 600). */
  idTokenTtl: number;
  /** The next token responses carry this ID token instead of the one issued; undefined = off. */
  swapIdToken: string | undefined;
  /** Follows an authorization URL through login (as `login`) and consent, without a browser;
   * returns the URL the provider redirected to at the client (the callback with code, state). */
  authorize(authUrl: string, login: string): Promise<URL>;
  /** A genuine ID token from this provider for `clientId`, with `nonce`, for `login`. */
  mintIdToken(clientId: string, nonce: string, login: string): Promise<string>;
  close(): Promise<void>;
}

const b64url = (b: Buffer) => b.toString('base64url');

function unescapeHtml(s: string): string {
  return s
    .replace(/&#x2F;/gi, '/')
    .replace(/&#47;/g, '/')
    .replace(/&#x3D;/gi, '=')
    .replace(/&quot;/g, '"')
    .replace(/&amp;/g, '&');
}

/** Listens first (so the issuer URL is known), serves the provider once `start` is called. */
export async function startOidcPeer(accounts: Record<string, Account>): Promise<OidcPeer> {
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  const server: Server = createServer((req, res) => {
    if (handler) handler(req, res);
    else res.writeHead(503).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const secrets: Record<string, string> = {
    [DASHBOARD_CLIENT]: randomBytes(24).toString('base64url'),
    'other-app': randomBytes(24).toString('base64url'),
  };
  let redirect = '';

  const peer: OidcPeer = {
    issuer,
    idTokenTtl: 600,
    swapIdToken: undefined,
    clientSecret: (id) => secrets[id]!,
    start(redirectUri) {
      redirect = redirectUri;
      const provider = new Provider(issuer, {
        clients: Object.entries(secrets).map(([client_id, client_secret]) => ({
          client_id,
          client_secret,
          redirect_uris: [redirectUri],
          post_logout_redirect_uris: [new URL('/', redirectUri).href],
          grant_types: ['authorization_code'],
          response_types: ['code'],
          token_endpoint_auth_method: 'client_secret_basic',
        })),
        findAccount: async (_ctx: unknown, id: string) => {
          const a = accounts[id];
          if (!a) return undefined;
          return {
            accountId: id,
            claims: async () => ({ sub: id, preferred_username: id, groups: a.groups ?? [] }),
          };
        },
        claims: { openid: ['sub'], profile: ['preferred_username'], groups: ['groups'] },
        scopes: ['openid', 'profile', 'groups'],
        pkce: { required: () => true },
        ttl: {
          IdToken: () => peer.idTokenTtl,
          AccessToken: 600,
          AuthorizationCode: 60,
          Interaction: 600,
          Session: 3600,
          Grant: 3600,
        },
        cookies: { keys: [randomBytes(16).toString('hex')] },
        features: { devInteractions: { enabled: true } },
      });
      provider.use(async (ctx, next) => {
        await next();
        const body = ctx.body as { id_token?: string } | undefined;
        if (ctx.path === '/token' && peer.swapIdToken && body?.id_token)
          body.id_token = peer.swapIdToken;
      });
      // The development interactions warn on every start; they are what this test wants.
      provider.on('server_error', () => undefined);
      handler = provider.callback();
    },
    async authorize(authUrl, login) {
      const jar = new Map<string, string>();
      let url = new URL(authUrl);
      let init: RequestInit = {};
      for (let i = 0; i < 20; i++) {
        const res = await fetch(url, {
          ...init,
          redirect: 'manual',
          headers: {
            ...(init.headers as Record<string, string> | undefined),
            cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; '),
          },
        });
        for (const c of res.headers.getSetCookie()) {
          const [pair] = c.split(';');
          const eq = pair!.indexOf('=');
          jar.set(pair!.slice(0, eq), pair!.slice(eq + 1));
        }
        const location = res.headers.get('location');
        if (res.status >= 300 && res.status < 400 && location) {
          await res.body?.cancel();
          const next = new URL(location, url);
          if (next.origin !== issuer) return next;
          url = next;
          init = {};
          continue;
        }
        const html = await res.text();
        const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1];
        if (res.status !== 200 || !action)
          throw new Error(`provider answered ${res.status}: ${html.slice(0, 300)}`);
        const form: Record<string, string> = html.includes('name="login"')
          ? { prompt: 'login', login, password: 'any' }
          : { prompt: 'consent' };
        url = new URL(unescapeHtml(action), url);
        init = {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams(form).toString(),
        };
      }
      throw new Error('too many redirects at the provider');
    },
    async mintIdToken(clientId, nonce, login) {
      const verifier = b64url(randomBytes(32));
      const auth = new URL(`${issuer}/auth`);
      auth.search = new URLSearchParams({
        client_id: clientId,
        response_type: 'code',
        scope: 'openid profile',
        redirect_uri: redirect,
        state: b64url(randomBytes(16)),
        nonce,
        code_challenge: b64url(createHash('sha256').update(verifier).digest()),
        code_challenge_method: 'S256',
      }).toString();
      const back = await peer.authorize(auth.href, login);
      const code = back.searchParams.get('code');
      if (!code) throw new Error(`no code: ${back.href}`);
      const res = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: `Basic ${Buffer.from(`${clientId}:${secrets[clientId]}`).toString('base64')}`,
        },
        body: new URLSearchParams({
          grant_type: 'authorization_code',
          code,
          redirect_uri: redirect,
          code_verifier: verifier,
        }).toString(),
      });
      const body = (await res.json()) as { id_token?: string };
      if (!body.id_token) throw new Error(`token endpoint: ${res.status} ${JSON.stringify(body)}`);
      return body.id_token;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return peer;
}
