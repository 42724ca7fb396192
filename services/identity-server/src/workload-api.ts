import type { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import {
  WORKLOAD_API_SECURITY_HEADER as SECURITY_HEADER,
  jsonToStruct,
} from '@precinct/spiffe/workloadapi';
import type { Logger } from '@precinct/runtime';
import type { KeyManager, KeyType, SignedX509Svid } from './authority.js';
import { generateWorkloadKey, type WorkloadKey } from './keys.js';
import type { Clock } from './clock.js';
import { entryMatches, type Entry, type EntryRegistry } from './entries.js';
import type { FederatedBundle as FederatedBundleOf, FederatedBundles } from './federation.js';
import { signJwtSvid, validateJwtSvid } from './jwt-svid.js';
import type { IdentityMetrics } from './metrics.js';

/** A workload whose identity the server verified, and the SVIDs issued to it. */
export interface WorkloadBinding {
  readonly id: string;
  /** Verified selectors as `type:value`. */
  readonly selectors: ReadonlySet<string>;
  /** The binding ends when its evidence (the ServiceAccount token) expires. */
  expiresAt: number;
  readonly svids: Map<string, CachedSvid>;
  closed: boolean;
}

interface CachedSvid {
  revision: number;
  key: WorkloadKey;
  signed: SignedX509Svid;
  refreshAt: number;
}

export interface WorkloadApiDeps {
  entries: EntryRegistry;
  keys: KeyManager;
  clock: Clock;
  metrics: IdentityMetrics;
  logger: Logger;
  /** Fires `bundle` after a rotation changed the published keys, `binding` when one ends. */
  events: EventEmitter;
  workloadKeyType: KeyType;
  /** `iss` of JWT-SVIDs (the OIDC issuer URL), if any. */
  jwtIssuer?: string;
  /** Bundles of federated trust domains, given to entries that federate with them. */
  federation?: FederatedBundles;
  /** Uniform in [0, 1); injectable so the refresh jitter is testable. */
  random?: () => number;
  /**
   * False while bindings cannot be trusted to be current (the revocation watch is stale):
   * calls then get Unavailable, and open streams end with it.
   */
  available?: () => boolean;
}

/**
 * When to replace an SVID: at half its lifetime, moved by up to ±10% of that half so a fleet
 * issued at once does not come back at once.
 */
export function refreshTime(issuedAt: number, notAfter: number, random: () => number): number {
  const half = (notAfter - issuedAt) / 2;
  return issuedAt + half * (1 + (random() * 2 - 1) * 0.1);
}

type Status = { code: grpc.status; details: string };
const denied: Status = { code: grpc.status.PERMISSION_DENIED, details: 'no identity issued' };
const unavailable: Status = { code: grpc.status.UNAVAILABLE, details: 'temporarily unavailable' };

function bad(details: string): Status {
  return { code: grpc.status.INVALID_ARGUMENT, details };
}

function hasSecurityHeader(md: grpc.Metadata): boolean {
  return md.get(SECURITY_HEADER).some((v) => v.toString() === 'true');
}

const tdId = (td: string) => `spiffe://${td}`;

/**
 * The SpiffeWorkloadAPI handlers for callers whose identity `resolve()` returns (undefined: the
 * caller attested nothing, and gets PermissionDenied). Every response contains only SVIDs of
 * entries whose selectors are all among the binding's verified selectors.
 */
export function workloadApiImplementation(
  deps: WorkloadApiDeps,
  resolve: () => WorkloadBinding | undefined,
): grpc.UntypedServiceImplementation {
  const random = deps.random ?? Math.random;
  /** The caller's live binding, or the status to answer instead. */
  const live = (): WorkloadBinding | Status => {
    const b = resolve();
    if (!b || b.closed || b.expiresAt <= deps.clock.now()) return denied;
    if (deps.available && !deps.available()) return unavailable;
    return b;
  };
  // Workload API spec: SVIDs sharing a hint are not all sent; the first (oldest entry) wins.
  const entitled = (b: WorkloadBinding): Entry[] => {
    const hints = new Map<string, Entry>();
    for (const e of deps.entries.matching(b.selectors)) {
      const seen = e.hint ? hints.get(e.hint) : undefined;
      if (!seen || e.createdAt < seen.createdAt) hints.set(e.hint || `\0${e.id}`, e);
    }
    return [...hints.values()].sort(
      (a, z) => a.spiffeId.localeCompare(z.spiffeId) || a.id.localeCompare(z.id),
    );
  };

  /** Current SVIDs of the binding, re-signing those due; returns the earliest refresh time. */
  async function x509Svids(
    b: WorkloadBinding,
  ): Promise<{ entries: Entry[]; svids: CachedSvid[]; next: number }> {
    const now = deps.clock.now();
    const ents = entitled(b);
    const published = new Set(deps.keys.x509Authorities());
    const out: CachedSvid[] = [];
    for (const e of ents) {
      let c = b.svids.get(e.id);
      if (
        !c ||
        c.revision !== e.revision ||
        now >= c.refreshAt ||
        !published.has(c.signed.authority)
      ) {
        const key = await generateWorkloadKey(deps.workloadKeyType);
        const signed = deps.keys.signX509Svid({
          publicKey: key,
          spiffeId: e.spiffeId,
          dnsNames: e.dnsNames,
          ttlMs: e.x509SvidTtl * 1000,
        });
        deps.metrics.x509SvidsIssued.inc();
        c = {
          revision: e.revision,
          key,
          signed,
          refreshAt: refreshTime(now, signed.notAfter, random),
        };
        b.svids.set(e.id, c);
      }
      out.push(c);
    }
    for (const id of b.svids.keys()) if (!ents.some((e) => e.id === id)) b.svids.delete(id);
    return { entries: ents, svids: out, next: Math.min(...out.map((c) => c.refreshAt)) };
  }

  /** Federated bundles the binding's entries federate with (and the server has), by TD ID. */
  function federated<T>(ents: Entry[], pick: (b: FederatedBundleOf) => T): Record<string, T> {
    const out: Record<string, T> = {};
    for (const td of new Set(ents.flatMap((e) => e.federatesWith))) {
      const b = deps.federation?.get(td);
      if (b) out[tdId(td)] = pick(b);
    }
    return out;
  }
  const bundleVersion = () => `${deps.keys.version}.${deps.federation?.version ?? 0}`;
  const own = () => tdId(deps.keys.trustDomain);

  /**
   * Runs a server stream: sends `build()` now, again whenever `events` fire or the returned
   * deadline passes, only when the content changed, until the client cancels.
   */
  function stream(
    call: grpc.ServerWritableStream<unknown, unknown>,
    build: (
      b: WorkloadBinding,
    ) => Promise<{ message: unknown; fingerprint: string; next?: number } | Status>,
  ): void {
    if (!hasSecurityHeader(call.metadata))
      return void call.emit('error', bad('security header missing'));
    let done = false;
    let last = '';
    let cancelTimer: (() => void) | undefined;
    let chain = Promise.resolve();
    const finish = (status?: Status) => {
      if (done) return;
      done = true;
      cancelTimer?.();
      deps.entries.off('change', onEntry);
      deps.events.off('bundle', kick);
      deps.events.off('binding', kick);
      if (status) call.emit('error', status);
      else call.end();
    };
    const send = async () => {
      if (done) return;
      const b = live();
      if ('code' in b) return finish(b);
      let r;
      try {
        r = await build(b);
      } catch (err) {
        deps.logger.error({ err }, 'workload API: cannot build a response');
        return finish({ code: grpc.status.UNAVAILABLE, details: 'temporarily unavailable' });
      }
      if (done) return;
      if ('code' in r) return finish(r);
      if (r.fingerprint !== last) {
        last = r.fingerprint;
        call.write(r.message);
      }
      cancelTimer?.();
      const wake = Math.min(r.next ?? Infinity, b.expiresAt);
      cancelTimer = deps.clock.setTimeout(kick, Math.max(0, wake - deps.clock.now()));
    };
    function kick() {
      chain = chain.then(send);
    }
    // Only entries this workload is (or was) entitled to concern its stream.
    function onEntry(e: Entry, previous: Entry | undefined) {
      const b = resolve();
      if (!b || entryMatches(e, b.selectors) || (previous && entryMatches(previous, b.selectors))) {
        kick();
      }
    }
    call.on('cancelled', () => finish());
    deps.entries.on('change', onEntry);
    deps.events.on('bundle', kick);
    deps.events.on('binding', kick);
    kick();
  }

  return {
    FetchX509SVID(call: grpc.ServerWritableStream<unknown, unknown>) {
      stream(call, async (b) => {
        const { svids, entries, next } = await x509Svids(b);
        if (svids.length === 0) return denied;
        const bundle = deps.keys.x509BundleDer();
        const message = {
          svids: svids.map((c, i) => ({
            spiffe_id: entries[i]!.spiffeId,
            x509_svid: Buffer.concat(c.signed.chainDer),
            x509_svid_key: c.key.pkcs8Der,
            bundle,
            hint: entries[i]!.hint,
          })),
          crl: [],
          federated_bundles: federated(entries, (fb) => fb.x509Der),
        };
        const fingerprint = `${bundleVersion()}|${svids.map((c) => c.signed.chainDer[0]!.subarray(-32).toString('hex')).join(',')}`;
        return { message, fingerprint, next };
      });
    },
    FetchX509Bundles(call: grpc.ServerWritableStream<unknown, unknown>) {
      stream(call, async (b) => ({
        message: {
          crl: [],
          bundles: {
            ...federated(entitled(b), (fb) => fb.x509Der),
            [own()]: deps.keys.x509BundleDer(),
          },
        },
        fingerprint: `${bundleVersion()}|${entitled(b)
          .flatMap((e) => e.federatesWith)
          .join(',')}`,
      }));
    },
    FetchJWTBundles(call: grpc.ServerWritableStream<unknown, unknown>) {
      stream(call, async (b) => ({
        message: {
          bundles: {
            ...federated(entitled(b), (fb) => Buffer.from(fb.jwtBundleJson)),
            [own()]: Buffer.from(JSON.stringify(deps.keys.jwks())),
          },
        },
        fingerprint: `${bundleVersion()}|${entitled(b)
          .flatMap((e) => e.federatesWith)
          .join(',')}`,
      }));
    },
    FetchJWTSVID(
      call: grpc.ServerUnaryCall<{ audience: string[]; spiffe_id: string }, unknown>,
      cb: grpc.sendUnaryData<unknown>,
    ) {
      void (async () => {
        if (!hasSecurityHeader(call.metadata)) return cb(bad('security header missing'));
        const { audience, spiffe_id } = call.request;
        if (audience.length === 0) return cb(bad('audience is required'));
        if (audience.length > 16 || audience.some((a) => !a || a.length > 256)) {
          return cb(bad('audience must be 1-16 non-empty values of at most 256 characters'));
        }
        const b = live();
        if ('code' in b) return cb(b);
        let ents = entitled(b);
        if (spiffe_id) ents = ents.filter((e) => e.spiffeId === spiffe_id);
        if (ents.length === 0) return cb(denied);
        try {
          const now = deps.clock.now();
          const svids = [];
          for (const e of ents) {
            const s = await signJwtSvid(deps.keys, {
              spiffeId: e.spiffeId,
              audience,
              ttlSeconds: e.jwtSvidTtl,
              now,
              ...(deps.jwtIssuer ? { issuer: deps.jwtIssuer } : {}),
            });
            deps.metrics.jwtSvidsIssued.inc();
            svids.push({ spiffe_id: e.spiffeId, svid: s.token, hint: e.hint });
          }
          cb(null, { svids });
        } catch (err) {
          deps.logger.error({ err }, 'workload API: cannot sign a JWT-SVID');
          cb({ code: grpc.status.UNAVAILABLE, details: 'temporarily unavailable' });
        }
      })();
    },
    ValidateJWTSVID(
      call: grpc.ServerUnaryCall<{ audience: string; svid: string }, unknown>,
      cb: grpc.sendUnaryData<unknown>,
    ) {
      void (async () => {
        if (!hasSecurityHeader(call.metadata)) return cb(bad('security header missing'));
        const { audience, svid } = call.request;
        if (!audience) return cb(bad('audience is required'));
        if (!svid) return cb(bad('svid is required'));
        const b = live();
        if ('code' in b) return cb(b);
        const r = validateJwtSvid(
          deps.keys,
          svid,
          audience,
          deps.clock.now(),
          (td) => deps.federation?.get(td)?.bundle.jwt,
        );
        if (!r.ok) {
          deps.logger.info({ reason: r.reason }, 'workload API: JWT-SVID refused');
          return cb(bad('invalid JWT-SVID'));
        }
        cb(null, {
          spiffe_id: r.spiffeId,
          claims: jsonToStruct(r.claims as Record<string, unknown>),
        });
      })();
    },
  };
}
