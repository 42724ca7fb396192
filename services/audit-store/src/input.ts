// Checks on network input that JSON Schema cannot express: strings the database cannot store
// exactly as they were hashed, nesting deeper than the database (or a recursive serializer)
// can take, and timestamps outside the window the store keeps.

/** One problem with a request, as the 400 answer lists it. */
export interface InputProblem {
  field: string;
  message: string;
}

/** At most this many problems are listed in one answer (a bad 1000-event batch stays small). */
export const MAX_PROBLEMS = 100;

/** How deep `event_data` may nest (objects and arrays). */
export const MAX_EVENT_DATA_DEPTH = 32;

/**
 * Unicode noncharacters: U+FDD0..U+FDEF and the last two code points of every plane. They
 * are well-formed but "not for interchange"; they have no place in audit records and could
 * make one record look like another to a reader that drops them.
 */
const NONCHARACTER = new RegExp(
  `[\\u{FDD0}-\\u{FDEF}${Array.from({ length: 17 }, (_, p) => {
    const base = (p << 16) | 0xfffe;
    return `\\u{${base.toString(16)}}\\u{${(base + 1).toString(16)}}`;
  }).join('')}]`,
  'u',
);

/** ES2024's String.prototype.isWellFormed (Node >= 20), which this project's lib lacks. */
type WellFormedCheck = string & { isWellFormed(): boolean };

/**
 * Why a string cannot be stored as it is hashed, or undefined. Ill-formed UTF-16 (a lone
 * surrogate) is hashed as the escape JSON gives it but stored by the driver as U+FFFD, so a
 * valid chain would verify as tampered; PostgreSQL `text` and `jsonb` cannot hold U+0000.
 */
export function stringProblem(s: string): string | undefined {
  if (!(s as WellFormedCheck).isWellFormed())
    return 'must be well-formed Unicode (no lone surrogates)';
  if (s.includes('\u0000')) return 'must not contain NUL (U+0000)';
  if (NONCHARACTER.test(s)) return 'must not contain Unicode noncharacters';
  return undefined;
}

/**
 * True when raw JSON text may hold a string `stringProblem` refuses: a `\u` escape of NUL, of
 * a surrogate (paired ones too) or of a noncharacter, or a literal noncharacter. A literal NUL
 * is not JSON and a literal lone surrogate cannot come out of well-formed UTF-8, so `false`
 * means no string of the parsed value (keys included) has a problem: the walk is skipped.
 */
export function mayHoldBadStrings(jsonText: string): boolean {
  return SUSPECT_ESCAPE.test(jsonText) || NONCHARACTER.test(jsonText);
}
const SUSPECT_ESCAPE = /\\u(?:0000|[dD][89a-fA-F]|[fF][dD][dDeE]|[fF][fF][fF][eEfF])/;

/** A path segment for an object key, printable whatever the key holds. */
function keySegment(k: string): string {
  if (/^[A-Za-z_$][\w$-]{0,63}$/.test(k)) return `.${k}`;
  // JSON.stringify escapes NUL and lone surrogates, so the answer itself stays well-formed.
  const q = JSON.stringify(k.length > 64 ? `${k.slice(0, 64)}…` : k).replace(
    /[\u{FDD0}-\u{FDEF}\u{FFFE}\u{FFFF}]/gu,
    (c) => `\\u${c.codePointAt(0)!.toString(16)}`,
  );
  return `[${q}]`;
}

/**
 * Adds a problem for every string (object keys included) in `v` that `stringProblem` refuses,
 * with its path below `field`. Nesting is not bounded here: callers bound it first (or the
 * value comes from a flat parser such as the query string's).
 */
export function checkStrings(v: unknown, field: string, out: InputProblem[]): void {
  // An explicit stack: the value may be nested as deep as the JSON parser allowed.
  const stack: Array<[unknown, string]> = [[v, field]];
  while (stack.length > 0 && out.length < MAX_PROBLEMS) {
    const [x, path] = stack.pop()!;
    if (typeof x === 'string') {
      const p = stringProblem(x);
      if (p) out.push({ field: path || '(body)', message: p });
    } else if (Array.isArray(x)) {
      for (let i = x.length - 1; i >= 0; i--) stack.push([x[i], `${path}[${i}]`]);
    } else if (x !== null && typeof x === 'object') {
      const keys = Object.keys(x);
      for (let i = keys.length - 1; i >= 0; i--) {
        const k = keys[i]!;
        const seg = keySegment(k);
        const child = path ? `${path}${seg}` : seg.replace(/^\./, '');
        const p = stringProblem(k);
        if (p) out.push({ field: child, message: `key ${p}` });
        stack.push([(x as Record<string, unknown>)[k], child]);
      }
    }
  }
  if (out.length > MAX_PROBLEMS) out.length = MAX_PROBLEMS;
}

/** True when `v` nests objects/arrays deeper than `max` levels; stops as soon as it knows. */
export function deeperThan(v: unknown, max: number): boolean {
  if (v === null || typeof v !== 'object') return false;
  if (max <= 0) return true;
  if (Array.isArray(v)) {
    for (const x of v)
      if (x !== null && typeof x === 'object' && deeperThan(x, max - 1)) return true;
    return false;
  }
  for (const k in v) {
    const x = (v as Record<string, unknown>)[k];
    if (x !== null && typeof x === 'object' && deeperThan(x, max - 1)) return true;
  }
  return false;
}

/** The earliest and latest `event_timestamp` a write accepts, relative to the arrival time. */
export interface TimeWindow {
  /** How far in the past. Default: the default retention (2555 days). */
  maxAgeMs: number;
  /** How far in the future (clock skew between writer and store). Default 5 minutes. */
  maxSkewMs: number;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})$/;
/** 0001-01-01T00:00:00Z and 10000-01-01T00:00:00Z in ms: the years PostgreSQL takes as text. */
const YEAR_1 = -62_135_596_800_000;
const YEAR_10000 = 253_402_300_800_000;

/**
 * An RFC 3339 date-time in ms since the epoch, or undefined when it is not one or lies
 * outside years 1..9999 in UTC (PostgreSQL refuses year 0, which `0000-…` or an offset near
 * year 1 gives). Runs for every event written: no Date object unless the text needs one.
 */
export function timestampMs(s: string): number | undefined {
  if (s.length > 64 || !RFC3339.test(s)) return undefined;
  let t = Date.parse(s);
  if (Number.isNaN(t)) t = Date.parse(s.toUpperCase());
  return t >= YEAR_1 && t < YEAR_10000 ? t : undefined;
}

/** `timestampMs` as a Date. */
export function parseTimestamp(s: string): Date | undefined {
  const t = timestampMs(s);
  return t === undefined ? undefined : new Date(t);
}
