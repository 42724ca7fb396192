import { SpiffeId } from '@precinct/spiffe';
import { SecretsError } from './errors.js';

/**
 * Plain names (`alice`, `alice@example.org`) are their own key, as before SPIFFE IDs were
 * accepted, so tokens stored under them stay readable. No `~`: that marks the other two forms.
 * A leading dot is excluded so `.` and `..` can never be a key.
 */
const PLAIN = /^[A-Za-z0-9_@:+=-][A-Za-z0-9._@:+=-]{0,199}$/;
/** Longest key: a path segment the secrets manager and its storage handle comfortably. */
const MAX_KEY = 512;

/**
 * The one path segment under `people/` that holds a person's third-party tokens, from the
 * Transaction Token's subject. The broker writes and reads there; the dashboard's metadata
 * reads and deletes use the same function, so the two can never disagree.
 *
 * Injective, so two people never share a key, and the result is always one safe segment
 * (letters, digits, `._@:+=-~`, never `.` or `..`), so no subject leaves its path:
 * - a plain name is kept as is: `alice` -> `alice`;
 * - a SPIFFE ID (checked by the SPIFFE ID rules: no `%`, `..`, empty segments) becomes
 *   `spiffe~<trust domain>~<segment>~...`: `spiffe://example.org/user/alice` ->
 *   `spiffe~example.org~user~alice` (neither trust domains nor segments can hold `~`);
 * - anything else (`a/b`, `..`, `%2F`, spaces, any Unicode) becomes `b64~<base64url of its
 *   UTF-8>`. No Unicode normalisation: two different strings are two different people.
 *
 * Throws `SecretsError` `ERR_SECRETS_PERSON_INVALID` for an empty subject, one that is not
 * well-formed Unicode (a lone surrogate would encode like U+FFFD and collide), or one whose key
 * would be longer than 512 characters.
 */
export function peopleTokenKey(subject: string): string {
  if (typeof subject !== 'string') throw new TypeError('secrets: subject must be a string');
  const refuse = (why: string): never => {
    throw new SecretsError('ERR_SECRETS_PERSON_INVALID', `person's subject ${why}`);
  };
  if (subject.length === 0) refuse('is empty');
  if (PLAIN.test(subject)) return subject;
  let key: string | undefined;
  if (subject.startsWith('spiffe://')) {
    try {
      const id = SpiffeId.parse(subject);
      key = `spiffe~${id.trustDomain.name}${id.path.replaceAll('/', '~')}`;
    } catch {
      key = undefined; // not a valid SPIFFE ID: encoded like any other string below
    }
  }
  if (key === undefined) {
    if (!isWellFormed(subject)) refuse('is not well-formed Unicode');
    key = `b64~${Buffer.from(subject, 'utf8').toString('base64url')}`;
  }
  if (key.length > MAX_KEY) refuse(`is too long (key over ${MAX_KEY} characters)`);
  return key;
}

function isWellFormed(s: string): boolean {
  // String.prototype.isWellFormed is Node >= 20; this package supports 20.19+.
  return /^(?:[^\uD800-\uDFFF]|[\uD800-\uDBFF][\uDC00-\uDFFF])*$/.test(s);
}
