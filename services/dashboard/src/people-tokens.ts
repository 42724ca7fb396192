// People's third-party tokens (issue 13): a person stores e.g. a GitHub token through the BFF;
// it goes to the egress broker (mTLS, with the person's own Transaction Token) which writes it to
// the secrets manager, and agents acting for the person later use it through the broker without
// seeing it. The BFF never reads a token back: what it tells the browser is metadata only
// (stored or not, and since when), read with a secrets-manager policy that cannot read data.
import { request, type Dispatcher } from 'undici';
import { TXN_TOKEN_HEADER } from '@precinct/delegation';

/** What the dashboard's /api/secrets routes use; `brokerPeopleTokens` is the ready-made one. */
export interface PeopleTokensBackend {
  /** The providers a person may store a token for (e.g. `github`). */
  readonly providers: readonly string[];
  /** Stores `token` for the Transaction Token's person (its subject; no actor). */
  store(provider: string, token: string, txnToken: string): Promise<void>;
  /** Whether `person` (the Transaction Token subject) has a token stored: never the token. */
  status(person: string, provider: string): Promise<{ stored: boolean; updatedAt?: string }>;
  /** Removes every version of the person's token. */
  remove(person: string, provider: string): Promise<void>;
  /** The scope the person's Transaction Token needs to store a token. */
  storeScope(provider: string): string;
  /**
   * The scope of the person's Transaction Token the dashboard hands an agent to call `provider`
   * through the broker (POST /api/agents/:id/egress/:provider); without it, no such route.
   */
  callScope?(provider: string): string;
}

/** The broker or secrets manager refused (the person is told "not allowed"). */
export class PeopleTokensRefused extends Error {}
/** The token itself was refused (400 from the broker). */
export class PeopleTokenInvalid extends Error {}

/**
 * The part of a secrets-manager session the BFF needs: `VaultSession` from @precinct/secrets
 * satisfies it. Its policy should allow `read` and `delete` on `<mount>/metadata/people/*` and
 * nothing on `<mount>/data/people/*`: the dashboard can then see and remove, never read.
 */
export interface SecretsMetadataClient {
  request(method: 'GET' | 'DELETE', path: string): Promise<{ data?: unknown }>;
}

export interface BrokerPeopleTokensOptions {
  /** The egress broker's base URL (`https://...`, mTLS). */
  brokerUrl: string;
  /** An undici dispatcher presenting the dashboard's SVID and accepting only the broker's ID. */
  dispatcher: Dispatcher;
  providers: readonly string[];
  metadata: SecretsMetadataClient;
  /** KV v2 mount, as the broker's. Default `secret`. */
  kvMount?: string;
  /**
   * The person's key under `people/`, exactly as the broker derives it from the subject
   * (`peopleTokenKey` of @precinct/secrets). Required: a default that differed from the broker's
   * rule would show and remove the wrong path.
   */
  personKey: (person: string) => string;
  /** Default `secrets:store:<provider>`. */
  storeScope?: (provider: string) => string;
  /** The call scope agents need (see PeopleTokensBackend.callScope). Default none. */
  callScope?: (provider: string) => string;
}

const notFound = (err: unknown) => {
  const e = err as { code?: unknown; status?: unknown };
  return e.code === 'ERR_SECRETS_NOT_FOUND' || e.status === 404;
};

/** People's tokens through the egress broker (store) and KV v2 metadata (status, remove). */
export function brokerPeopleTokens(o: BrokerPeopleTokensOptions): PeopleTokensBackend {
  const mount = o.kvMount ?? 'secret';
  const key = o.personKey;
  const meta = (person: string, provider: string) =>
    `${mount}/metadata/people/${key(person)}/${provider}`;
  return {
    providers: [...o.providers],
    storeScope: o.storeScope ?? ((p) => `secrets:store:${p}`),
    ...(o.callScope ? { callScope: o.callScope } : {}),
    async store(provider, token, txnToken) {
      const res = await request(`${o.brokerUrl}/v1/people/${encodeURIComponent(provider)}/token`, {
        dispatcher: o.dispatcher,
        method: 'PUT',
        headers: { 'content-type': 'application/json', [TXN_TOKEN_HEADER]: txnToken },
        body: JSON.stringify({ token }),
        headersTimeout: 10_000,
        bodyTimeout: 10_000,
      });
      await res.body.dump();
      if (res.statusCode === 204 || res.statusCode === 200) return;
      if (res.statusCode === 400) throw new PeopleTokenInvalid('token refused');
      if (res.statusCode === 401 || res.statusCode === 403)
        throw new PeopleTokensRefused(`broker answered ${res.statusCode}`);
      throw new Error(`broker answered ${res.statusCode}`);
    },
    async status(person, provider) {
      let res;
      try {
        res = await o.metadata.request('GET', meta(person, provider));
      } catch (err) {
        if (notFound(err)) return { stored: false };
        throw err;
      }
      const d = res.data as
        | {
            updated_time?: unknown;
            current_version?: unknown;
            versions?: Record<string, { deletion_time?: unknown; destroyed?: unknown }>;
          }
        | undefined;
      const current = d?.versions?.[String(d.current_version)];
      const live =
        current !== undefined &&
        !current.destroyed &&
        !(typeof current.deletion_time === 'string' && current.deletion_time !== '');
      return live && typeof d?.updated_time === 'string'
        ? { stored: true, updatedAt: d.updated_time }
        : { stored: live };
    },
    async remove(person, provider) {
      try {
        await o.metadata.request('DELETE', meta(person, provider));
      } catch (err) {
        if (!notFound(err)) throw err;
      }
    },
  };
}
