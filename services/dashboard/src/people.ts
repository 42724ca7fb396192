// Demo people and their passwords: generated once, written to a 0600 file for the person
// running the demo, and kept here only as scrypt hashes compared in constant time.
import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

// Memory-hard: 16 MiB and ~50 ms per attempt (N=2^14, r=8), the node:crypto defaults' cost.
const SCRYPT: ScryptOptions = { N: 16384, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };
const KEY_BYTES = 32;

function scrypt(password: string, salt: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scryptCb(password, salt, KEY_BYTES, SCRYPT, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

interface Hashed {
  salt: Buffer;
  hash: Buffer;
}

// scrypt is the point of a slow hash and also a lever for a flood of logins: at most this many
// run at once, at most QUEUE wait, and beyond that an attempt is refused without hashing.
const CONCURRENT = 2;
const QUEUE = 32;

export class PasswordBook {
  readonly #users = new Map<string, Hashed>();
  #running = 0;
  readonly #waiting: Array<() => void> = [];
  /** Attempts refused unhashed because too many were already waiting. */
  shed = 0;
  // Unknown names are checked against this, so they cost the same time as known ones.
  #decoy: Hashed | undefined;

  static async create(passwords: Record<string, string>): Promise<PasswordBook> {
    const book = new PasswordBook();
    for (const [name, pw] of Object.entries(passwords)) {
      const salt = randomBytes(16);
      book.#users.set(name, { salt, hash: await scrypt(pw, salt) });
    }
    const salt = randomBytes(16);
    book.#decoy = { salt, hash: await scrypt(randomBytes(24).toString('base64url'), salt) };
    return book;
  }

  names(): string[] {
    return [...this.#users.keys()];
  }

  /** The user's name when the password is right, else undefined. */
  async verify(username: string, password: string): Promise<string | undefined> {
    if (this.#running >= CONCURRENT) {
      if (this.#waiting.length >= QUEUE) {
        this.shed++;
        return undefined;
      }
      // The finishing attempt hands its slot over: #running stays as it is.
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    } else {
      this.#running++;
    }
    try {
      const entry = this.#users.get(username);
      const h = entry ?? this.#decoy!;
      const got = await scrypt(password, h.salt);
      const same = timingSafeEqual(got, h.hash);
      return entry && same ? username : undefined;
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#running--;
    }
  }
}

/**
 * The demo users' passwords from `file` (`{"alice": "...", ...}`), creating the file (0600) with
 * fresh random passwords for any of `names` it lacks.
 */
export function loadOrCreateDemoPasswords(
  file: string,
  names: readonly string[],
): Record<string, string> {
  let existing: Record<string, string> = {};
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
      for (const [k, v] of Object.entries(parsed)) {
        if (typeof v === 'string' && v.length >= 12) existing[k] = v;
      }
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new Error(`dashboard: ${file} is not a JSON object of passwords`, { cause: err });
    }
    existing = {};
  }
  const out: Record<string, string> = {};
  let changed = false;
  for (const n of names) {
    out[n] = existing[n] ?? randomBytes(15).toString('base64url');
    if (!existing[n]) changed = true;
  }
  if (changed) {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, JSON.stringify(out, null, 2) + '\n', { mode: 0o600 });
  }
  chmodSync(file, 0o600);
  return out;
}
