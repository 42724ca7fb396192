import { join } from 'node:path';
import {
  loadUpstream,
  makeCa,
  makeJwtKey,
  type JwtAuthority,
  type Upstream,
  type X509Authority,
} from './ca.js';
import type { Clock } from './clock.js';
import { IdentityServerError } from './errors.js';
import type { KeyType } from './keys.js';
import { readKeyStore, writeKeyStore, type Role } from './keystore.js';
import { signX509Svid, type SignedX509Svid, type X509SvidParams } from './x509-svid.js';

// The rotation of the trust domain's keys (what to publish, which key signs). Making keys is
// ca.ts, keeping them keys.json is keystore.ts, signing leaves x509-svid.ts.

export type { KeyType } from './keys.js';
export type { SignedX509Svid } from './x509-svid.js';

interface Slots<T> {
  active: T | undefined;
  prepared: T | undefined;
  /** Superseded but still published until they expire, so no issued SVID loses trust. */
  retired: T[];
}

export interface KeyManagerOptions {
  trustDomain: string;
  /** Where keys.json (0600) lives; without it keys live in memory only. */
  dataDir?: string;
  clock: Clock;
  /** CA certificate lifetime; default 24 h. */
  caTtlMs?: number;
  /** JWT signing key lifetime; default 24 h. */
  jwtKeyTtlMs?: number;
  caKeyType?: KeyType;
  /**
   * An upstream CA (self-signed root, PEM, and its PKCS#8 or SEC1 key): each rotation's CA is
   * then an intermediate it signs, the bundle holds the root, and SVID chains carry the
   * intermediate.
   */
  upstream?: { certPem: string; keyPem: string };
}

/** Kind of rotation step, for metrics and logs. */
export type RotationEvent =
  | 'x509_prepared'
  | 'x509_activated'
  | 'x509_expired'
  | 'jwt_prepared'
  | 'jwt_activated'
  | 'jwt_expired';

/**
 * The trust domain's keys: X.509 CAs and JWT signing keys, each in three roles (active,
 * prepared, retired) and rotated as SPIRE does. The next key is prepared, and published, at
 * half of the active key's lifetime, activated at five sixths of it, and a retired key stays
 * published until it expires. Every SVID expires no later than the key that signed it, so a
 * workload never holds an SVID its peers have stopped trusting.
 */
export class KeyManager {
  readonly trustDomain: string;
  readonly #opts: Required<Omit<KeyManagerOptions, 'dataDir' | 'upstream'>> & {
    dataDir?: string;
  };
  #upstream: Upstream | undefined;
  #x509: Slots<X509Authority> = { active: undefined, prepared: undefined, retired: [] };
  #jwt: Slots<JwtAuthority> = { active: undefined, prepared: undefined, retired: [] };
  #lock: Promise<unknown> = Promise.resolve();
  #version = 0;

  private constructor(opts: KeyManagerOptions) {
    this.trustDomain = opts.trustDomain;
    this.#opts = {
      caTtlMs: 24 * 3600_000,
      jwtKeyTtlMs: 24 * 3600_000,
      caKeyType: 'ec-p256',
      ...opts,
    };
  }

  /** Loads keys.json from `dataDir` if present, then rotates (creating the first keys). */
  static async open(opts: KeyManagerOptions): Promise<KeyManager> {
    const km = new KeyManager(opts);
    if (opts.upstream) km.#upstream = await loadUpstream(opts.upstream);
    if (opts.dataDir) await km.#load();
    await km.rotate();
    return km;
  }

  /** Increments whenever the published key set changes (bundles must be re-sent). */
  get version(): number {
    return this.#version;
  }

  /** CA certificates relying parties must trust now: active, prepared and retired. */
  x509Authorities(): X509Authority[] {
    return published(this.#x509);
  }

  /** JWT keys relying parties must trust now. */
  jwtAuthorities(): JwtAuthority[] {
    return published(this.#jwt);
  }

  /** The certificates relying parties trust: the CAs, or the upstream root. */
  x509BundleCerts(): Buffer[] {
    return this.#upstream ? [this.#upstream.der] : this.x509Authorities().map((a) => a.der);
  }

  /** The concatenated DER of {@link x509BundleCerts} (the Workload API `bundle`). */
  x509BundleDer(): Buffer {
    return Buffer.concat(this.x509BundleCerts());
  }

  /** The JWK Set of the published JWT keys. */
  jwks(): { keys: JwtAuthority['publicJwk'][] } {
    return { keys: this.jwtAuthorities().map((a) => a.publicJwk) };
  }

  /**
   * Advances the rotation state machine to the clock's now. Returns what happened (empty when
   * nothing changed). Serialised: concurrent calls run one after the other.
   */
  rotate(): Promise<RotationEvent[]> {
    const run = this.#lock.then(() => this.#rotate());
    this.#lock = run.catch(() => undefined);
    return run;
  }

  async #rotate(): Promise<RotationEvent[]> {
    const now = this.#opts.clock.now();
    const events: RotationEvent[] = [];
    const step = async <T extends { notBefore: number; notAfter: number }>(
      slots: Slots<T>,
      make: (now: number) => Promise<T>,
      kind: 'x509' | 'jwt',
    ) => {
      const before = slots.retired.length;
      slots.retired = slots.retired.filter((a) => a.notAfter > now);
      if (slots.retired.length !== before) events.push(`${kind}_expired`);
      if (slots.active && slots.active.notAfter <= now) {
        slots.active = undefined;
        events.push(`${kind}_expired`);
      }
      if (slots.prepared && slots.prepared.notAfter <= now) slots.prepared = undefined;
      if (!slots.active) {
        slots.active = slots.prepared ?? (await make(now));
        slots.prepared = undefined;
        events.push(`${kind}_activated`);
      }
      const a = slots.active;
      const life = a.notAfter - a.notBefore;
      if (!slots.prepared && now >= a.notBefore + life / 2) {
        slots.prepared = await make(now);
        events.push(`${kind}_prepared`);
      }
      if (slots.prepared && now >= a.notBefore + (life * 5) / 6) {
        slots.retired.push(a);
        slots.active = slots.prepared;
        slots.prepared = undefined;
        events.push(`${kind}_activated`);
      }
    };
    await step(
      this.#x509,
      (n) =>
        makeCa({
          trustDomain: this.trustDomain,
          keyType: this.#opts.caKeyType,
          ttlMs: this.#opts.caTtlMs,
          upstream: this.#upstream,
          now: n,
        }),
      'x509',
    );
    await step(this.#jwt, (n) => makeJwtKey(this.#opts.jwtKeyTtlMs, n), 'jwt');
    if (events.length > 0) {
      this.#version++;
      if (this.#opts.dataDir) await this.#save();
    }
    return events;
  }

  /** The instant the next rotation step is due (for the caller's timer). */
  nextRotationAt(): number {
    const due = (s: Slots<{ notBefore: number; notAfter: number }>) => {
      const t: number[] = s.retired.map((r) => r.notAfter);
      if (s.active) {
        const life = s.active.notAfter - s.active.notBefore;
        t.push(s.prepared ? s.active.notBefore + (life * 5) / 6 : s.active.notBefore + life / 2);
        t.push(s.active.notAfter);
      }
      return t;
    };
    return Math.min(...due(this.#x509), ...due(this.#jwt));
  }

  /**
   * Signs an X.509-SVID with the active CA (see x509-svid.ts): its lifetime is capped to the
   * CA's. Synchronous.
   */
  signX509Svid(params: X509SvidParams): SignedX509Svid {
    const ca = this.#x509.active;
    if (!ca) throw new IdentityServerError('ERR_CA_UNAVAILABLE', 'no active CA');
    return signX509Svid(ca, params, this.#opts.clock.now());
  }

  /** The active JWT key, for signing. Throws when none (never after open()). */
  activeJwtAuthority(): JwtAuthority {
    const a = this.#jwt.active;
    if (!a) throw new IdentityServerError('ERR_CA_UNAVAILABLE', 'no active JWT key');
    return a;
  }

  get #file(): string {
    return join(this.#opts.dataDir!, 'keys.json');
  }

  async #load(): Promise<void> {
    const stored = await readKeyStore(this.#file, this.#upstream);
    for (const [role, a] of stored?.x509 ?? []) place(this.#x509, role, a);
    for (const [role, a] of stored?.jwt ?? []) place(this.#jwt, role, a);
  }

  async #save(): Promise<void> {
    await writeKeyStore(this.#file, { x509: roles(this.#x509), jwt: roles(this.#jwt) });
  }
}

function published<T>(s: Slots<T>): T[] {
  return [...(s.active ? [s.active] : []), ...(s.prepared ? [s.prepared] : []), ...s.retired];
}

function place<T>(s: Slots<T>, state: Role, a: T): void {
  if (state === 'active') s.active = a;
  else if (state === 'prepared') s.prepared = a;
  else s.retired.push(a);
}

function roles<T>(s: Slots<T>): [Role, T][] {
  return [
    ...(s.active ? [['active', s.active] as [Role, T]] : []),
    ...(s.prepared ? [['prepared', s.prepared] as [Role, T]] : []),
    ...s.retired.map((r) => ['retired', r] as [Role, T]),
  ];
}
