import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import { IdentityServerError } from './errors.js';
import { parseSpiffeId, parseTrustDomain } from './spiffe-id.js';
import type { Db } from '@precinct/db';
import { ENTRY_SCHEMA } from './store.js';

/** A selector: evidence about a workload, e.g. `{ type: 'k8s', value: 'ns:default' }`. */
export interface Selector {
  type: string;
  value: string;
}

/** A registration entry: who (selectors, all must match) gets which SPIFFE ID. */
export interface Entry {
  id: string;
  spiffeId: string;
  selectors: Selector[];
  /** X.509-SVID lifetime in seconds (default 3600). */
  x509SvidTtl: number;
  /** JWT-SVID lifetime in seconds (default 300). */
  jwtSvidTtl: number;
  dnsNames: string[];
  hint: string;
  /** Trust domains whose bundles workloads of this entry receive. */
  federatesWith: string[];
  admin: boolean;
  revision: number;
  createdAt: string;
  updatedAt: string;
}

/** What a caller may set on create (everything) and on update (any subset). */
export type EntryInput = Partial<
  Pick<
    Entry,
    | 'spiffeId'
    | 'selectors'
    | 'x509SvidTtl'
    | 'jwtSvidTtl'
    | 'dnsNames'
    | 'hint'
    | 'federatesWith'
    | 'admin'
  >
>;

export const DEFAULT_X509_SVID_TTL = 3600;
export const DEFAULT_JWT_SVID_TTL = 300;
const MAX_TTL = 30 * 24 * 3600;
const MAX_SELECTORS = 32;
const MAX_DNS = 32;
const SELECTOR_TYPE_RE = /^[a-z0-9_-]{1,64}$/;
// RFC 1123 host names, with an optional leading wildcard label.
const DNS_RE =
  /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

/** Parses `type:value` (the value may itself contain colons: `k8s:ns:default`). */
export function parseSelector(s: string): Selector {
  const i = s.indexOf(':');
  if (i <= 0 || i === s.length - 1) {
    throw invalid(`selector "${s.slice(0, 80)}" must look like type:value`);
  }
  return checkSelector({ type: s.slice(0, i), value: s.slice(i + 1) });
}

function checkSelector(sel: unknown): Selector {
  const s = sel as Selector;
  if (
    typeof s !== 'object' ||
    s === null ||
    typeof s.type !== 'string' ||
    typeof s.value !== 'string'
  ) {
    throw invalid('a selector must be {type, value} strings');
  }
  if (!SELECTOR_TYPE_RE.test(s.type)) throw invalid('selector type must be 1-64 of a-z 0-9 _ -');
  if (s.value.length === 0 || s.value.length > 256 || hasControl(s.value)) {
    throw invalid('selector value must be 1-256 printable characters');
  }
  return { type: s.type, value: s.value };
}

function hasControl(s: string): boolean {
  for (let i = 0; i < s.length; i++)
    if (s.charCodeAt(i) < 0x20 || s.charCodeAt(i) === 0x7f) return true;
  return false;
}

function invalid(msg: string): IdentityServerError {
  return new IdentityServerError('ERR_ENTRY_INVALID', msg);
}

function ttl(v: unknown, name: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_TTL) {
    throw invalid(`${name} must be a whole number of seconds from 1 to ${MAX_TTL}`);
  }
  return v;
}

/**
 * Validates an entry input against the server's trust domain. `partial` for updates. Every
 * field is checked before anything is written, so bad input changes nothing.
 */
export function validateEntryInput(
  input: unknown,
  trustDomain: string,
  partial = false,
): EntryInput {
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    throw invalid('entry must be an object');
  const known = new Set([
    'spiffeId',
    'selectors',
    'x509SvidTtl',
    'jwtSvidTtl',
    'dnsNames',
    'hint',
    'federatesWith',
    'admin',
  ]);
  for (const k of Object.keys(input))
    if (!known.has(k)) throw invalid(`unknown field "${k.slice(0, 40)}"`);
  const i = input as Record<string, unknown>;
  const out: EntryInput = {};
  if (i.spiffeId !== undefined || !partial) {
    if (typeof i.spiffeId !== 'string') throw invalid('spiffeId is required');
    let parsed;
    try {
      parsed = parseSpiffeId(i.spiffeId);
    } catch (err) {
      throw invalid((err as Error).message);
    }
    if (parsed.trustDomain !== trustDomain) {
      throw new IdentityServerError(
        'ERR_TRUST_DOMAIN_MISMATCH',
        `spiffeId must be in trust domain ${trustDomain}`,
      );
    }
    if (!parsed.path)
      throw invalid('spiffeId must have a path (the trust domain ID is not a workload)');
    out.spiffeId = parsed.id;
  }
  if (i.selectors !== undefined || !partial) {
    if (!Array.isArray(i.selectors) || i.selectors.length === 0)
      throw invalid('at least one selector is required');
    if (i.selectors.length > MAX_SELECTORS) throw invalid(`at most ${MAX_SELECTORS} selectors`);
    const sels = i.selectors.map((s) =>
      typeof s === 'string' ? parseSelector(s) : checkSelector(s),
    );
    const seen = new Set<string>();
    out.selectors = sels.filter((s) => {
      const k = `${s.type}:${s.value}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
  }
  if (i.x509SvidTtl !== undefined) out.x509SvidTtl = ttl(i.x509SvidTtl, 'x509SvidTtl');
  if (i.jwtSvidTtl !== undefined) out.jwtSvidTtl = ttl(i.jwtSvidTtl, 'jwtSvidTtl');
  if (i.dnsNames !== undefined) {
    if (!Array.isArray(i.dnsNames) || i.dnsNames.length > MAX_DNS)
      throw invalid(`dnsNames must be a list of at most ${MAX_DNS}`);
    for (const d of i.dnsNames) {
      if (typeof d !== 'string' || d.length > 253 || !DNS_RE.test(d)) {
        throw invalid(`dnsNames entry "${String(d).slice(0, 80)}" is not a DNS name`);
      }
    }
    out.dnsNames = [...new Set((i.dnsNames as string[]).map((d) => d.toLowerCase()))];
  }
  if (i.hint !== undefined) {
    if (typeof i.hint !== 'string' || i.hint.length > 128 || hasControl(i.hint)) {
      throw invalid('hint must be at most 128 printable characters');
    }
    out.hint = i.hint;
  }
  if (i.federatesWith !== undefined) {
    if (!Array.isArray(i.federatesWith) || i.federatesWith.length > 32)
      throw invalid('federatesWith must be a list of at most 32');
    out.federatesWith = (i.federatesWith as unknown[]).map((td) => {
      if (typeof td !== 'string') throw invalid('federatesWith entries must be trust domain names');
      let name;
      try {
        name = parseTrustDomain(td);
      } catch (err) {
        throw invalid((err as Error).message);
      }
      if (name === trustDomain) throw invalid('an entry cannot federate with its own trust domain');
      return name;
    });
    out.federatesWith = [...new Set(out.federatesWith)];
  }
  if (i.admin !== undefined) {
    if (typeof i.admin !== 'boolean') throw invalid('admin must be true or false');
    out.admin = i.admin;
  }
  return out;
}

const selectorKey = (sels: Selector[]) =>
  sels
    .map((s) => `${s.type}:${s.value}`)
    .sort()
    .join('\n');

/** True when every selector of the entry is among the workload's (verified) selectors. */
export function entryMatches(entry: Entry, workload: ReadonlySet<string>): boolean {
  return entry.selectors.every((s) => workload.has(`${s.type}:${s.value}`));
}

/**
 * The registration entries: SQL is the record, an in-memory map serves reads, and `change`
 * fires after each committed write with the entry and its previous version (a deleted entry
 * comes as both). One server writes a database; several identity servers on
 * one PostgreSQL would need LISTEN/NOTIFY, which is not built yet.
 */
export class EntryRegistry extends EventEmitter<{
  change: [entry: Entry, previous: Entry | undefined];
}> {
  readonly #db: Db;
  readonly #trustDomain: string;
  readonly #entries = new Map<string, Entry>();

  private constructor(db: Db, trustDomain: string) {
    super();
    this.#db = db;
    this.#trustDomain = trustDomain;
  }

  static async open(db: Db, trustDomain: string): Promise<EntryRegistry> {
    await db.query(ENTRY_SCHEMA);
    const r = new EntryRegistry(db, trustDomain);
    const { rows } = await db.query<{ body: Entry | string }>('SELECT body FROM identity_entries');
    for (const row of rows) {
      const e = (typeof row.body === 'string' ? JSON.parse(row.body) : row.body) as Entry;
      r.#entries.set(e.id, e);
    }
    return r;
  }

  list(): Entry[] {
    return [...this.#entries.values()].sort(
      (a, b) => a.spiffeId.localeCompare(b.spiffeId) || a.id.localeCompare(b.id),
    );
  }

  get(id: string): Entry {
    const e = this.#entries.get(id);
    if (!e) throw new IdentityServerError('ERR_ENTRY_NOT_FOUND', 'entry not found');
    return e;
  }

  /** Entries whose selectors are all among `selectors`, sorted by SPIFFE ID. */
  matching(selectors: ReadonlySet<string>): Entry[] {
    // Runs on every stream wake-up of every workload: no sort of the whole table.
    const out: Entry[] = [];
    for (const e of this.#entries.values()) if (entryMatches(e, selectors)) out.push(e);
    return out.sort((a, b) => a.spiffeId.localeCompare(b.spiffeId) || a.id.localeCompare(b.id));
  }

  async create(input: unknown): Promise<Entry> {
    const v = validateEntryInput(input, this.#trustDomain);
    const now = new Date().toISOString();
    const e: Entry = {
      id: randomUUID(),
      spiffeId: v.spiffeId!,
      selectors: v.selectors!,
      x509SvidTtl: v.x509SvidTtl ?? DEFAULT_X509_SVID_TTL,
      jwtSvidTtl: v.jwtSvidTtl ?? DEFAULT_JWT_SVID_TTL,
      dnsNames: v.dnsNames ?? [],
      hint: v.hint ?? '',
      federatesWith: v.federatesWith ?? [],
      admin: v.admin ?? false,
      revision: 1,
      createdAt: now,
      updatedAt: now,
    };
    this.#checkUnique(e);
    await this.#db.query(
      `INSERT INTO identity_entries (id, spiffe_id, selector_key, body, revision, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $6)`,
      [e.id, e.spiffeId, selectorKey(e.selectors), JSON.stringify(e), e.revision, now],
    );
    this.#entries.set(e.id, e);
    this.emit('change', e, undefined);
    return e;
  }

  async update(id: string, input: unknown): Promise<Entry> {
    const old = this.get(id);
    const v = validateEntryInput(input, this.#trustDomain, true);
    const e: Entry = {
      ...old,
      ...v,
      revision: old.revision + 1,
      updatedAt: new Date().toISOString(),
    };
    this.#checkUnique(e);
    const r = await this.#db.query(
      `UPDATE identity_entries SET spiffe_id = $2, selector_key = $3, body = $4, revision = $5, updated_at = $6
       WHERE id = $1 AND revision = $7 RETURNING id`,
      [
        e.id,
        e.spiffeId,
        selectorKey(e.selectors),
        JSON.stringify(e),
        e.revision,
        e.updatedAt,
        old.revision,
      ],
    );
    if (r.rows.length !== 1)
      throw new IdentityServerError('ERR_ENTRY_NOT_FOUND', 'entry changed or was deleted');
    this.#entries.set(e.id, e);
    this.emit('change', e, old);
    return e;
  }

  async delete(id: string): Promise<Entry> {
    const e = this.get(id);
    await this.#db.query('DELETE FROM identity_entries WHERE id = $1', [id]);
    this.#entries.delete(id);
    this.emit('change', e, e);
    return e;
  }

  #checkUnique(e: Entry): void {
    const key = selectorKey(e.selectors);
    for (const o of this.#entries.values()) {
      if (o.id !== e.id && o.spiffeId === e.spiffeId && selectorKey(o.selectors) === key) {
        throw new IdentityServerError(
          'ERR_ENTRY_EXISTS',
          'an entry with this SPIFFE ID and selectors exists',
        );
      }
    }
  }
}
