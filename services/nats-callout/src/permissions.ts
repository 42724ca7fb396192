/** ServiceAccount annotations read by the callout. */
export const ANNOTATIONS = {
  allowedPub: 'nats.io/allowed-pub-subjects',
  allowedSub: 'nats.io/allowed-sub-subjects',
  deniedPub: 'nats.io/denied-pub-subjects',
  deniedSub: 'nats.io/denied-sub-subjects',
} as const;

/** NATS user permissions, in the shape of a user JWT's `nats` claims. */
export interface UserPermissions {
  pub: { allow: string[]; deny: string[] };
  sub: { allow: string[]; deny: string[] };
  /** Response permission: a client may publish one reply to each request it receives. */
  resp: { max: number; ttl: number };
}

/** Why an annotation entry was dropped (a bounded metric label). */
export type PermissionWarningReason = 'reserved_subject' | 'invalid_subject' | 'too_many_entries';

export interface PermissionWarning {
  annotation: string;
  /** The offending entry, truncated to 100 characters. */
  entry: string;
  reason: PermissionWarningReason;
}

export interface PermissionInput {
  namespace: string;
  serviceAccount: string;
  annotations?: Readonly<Record<string, string | undefined>>;
  /** Grant `_INBOX.>` to every subscriber (weaker: anyone can read anyone's replies). */
  sharedInbox?: boolean;
}

const MAX_SUBJECT_LENGTH = 256;
const MAX_ENTRIES_PER_ANNOTATION = 64;

/**
 * The private inbox prefix of a ServiceAccount: `_INBOX_<namespace>_<serviceaccount>`. A
 * ServiceAccount name may contain dots, which would split the prefix into several subject
 * tokens (and `_INBOX_ns_a.>` would then cover the inbox of `a.b`); dots become underscores,
 * which neither namespaces nor ServiceAccount names may contain, so the mapping is one-to-one.
 */
export function privateInboxPrefix(namespace: string, serviceAccount: string): string {
  return `_INBOX_${namespace}_${serviceAccount.replaceAll('.', '_')}`;
}

/**
 * A NATS subject or wildcard filter: dot-separated non-empty tokens of printable characters
 * without whitespace, `*` only as a whole token, `>` only as the whole last token.
 */
export function isValidSubject(subject: string): boolean {
  if (subject.length === 0 || subject.length > MAX_SUBJECT_LENGTH) return false;
  // eslint-disable-next-line no-control-regex
  if (/[\s\u0000-\u001f\u007f]/.test(subject)) return false;
  const tokens = subject.split('.');
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.length === 0) return false;
    if (t.includes('>') && (t !== '>' || i !== tokens.length - 1)) return false;
    if (t.includes('*') && t !== '*') return false;
  }
  return true;
}

/**
 * A grant that would reach inboxes or replies that are not the caller's own: a first token
 * beginning `_INBOX` or `_REPLY`, or a wildcard first token (`>`, `*.>`, ...), which covers
 * every inbox. Only the callout hands out inbox access, so annotations cannot claim it.
 */
function isReserved(subject: string): boolean {
  const first = subject.split('.', 1)[0]!;
  const upper = first.toUpperCase();
  return upper.startsWith('_INBOX') || upper.startsWith('_REPLY') || first === '*' || first === '>';
}

function parseList(
  annotation: string,
  raw: string | undefined,
  allow: boolean,
  warnings: PermissionWarning[],
): string[] {
  if (raw === undefined) return [];
  const out: string[] = [];
  for (const part of raw.split(',')) {
    const entry = part.trim();
    if (entry === '') continue;
    const shown = entry.slice(0, 100);
    if (!isValidSubject(entry)) {
      warnings.push({ annotation, entry: shown, reason: 'invalid_subject' });
    } else if (allow && isReserved(entry)) {
      warnings.push({ annotation, entry: shown, reason: 'reserved_subject' });
    } else if (out.length >= MAX_ENTRIES_PER_ANNOTATION) {
      warnings.push({ annotation, entry: shown, reason: 'too_many_entries' });
    } else if (!out.includes(entry)) out.push(entry);
  }
  return out;
}

/**
 * The NATS permissions of a ServiceAccount. Pure: the same input always gives the same output.
 *
 * - publish: `<namespace>.>` plus `nats.io/allowed-pub-subjects`;
 * - subscribe: `<namespace>.>`, the private inbox `_INBOX_<namespace>_<sa>.>` plus
 *   `nats.io/allowed-sub-subjects` (and `_INBOX.>` only with `sharedInbox`);
 * - deny lists from `nats.io/denied-pub-subjects` / `nats.io/denied-sub-subjects`;
 * - replies through `allow_responses` (one message per request), never a shared inbox grant.
 *
 * Entries are comma-separated, trimmed, empty ones dropped; entries claiming `_INBOX`/`_REPLY`
 * (or a wildcard first token) and invalid subjects are dropped and reported in `warnings`.
 */
export function buildPermissions(input: PermissionInput): {
  permissions: UserPermissions;
  warnings: PermissionWarning[];
} {
  const { namespace, serviceAccount } = input;
  const a = input.annotations ?? {};
  const warnings: PermissionWarning[] = [];
  const own = `${namespace}.>`;
  const inbox = `${privateInboxPrefix(namespace, serviceAccount)}.>`;
  const union = (base: string[], extra: string[]) => [
    ...base,
    ...extra.filter((s) => !base.includes(s)),
  ];
  const pubAllow = union(
    [own],
    parseList(ANNOTATIONS.allowedPub, a[ANNOTATIONS.allowedPub], true, warnings),
  );
  const subBase = input.sharedInbox ? [own, inbox, '_INBOX.>'] : [own, inbox];
  const subAllow = union(
    subBase,
    parseList(ANNOTATIONS.allowedSub, a[ANNOTATIONS.allowedSub], true, warnings),
  );
  const pubDeny = parseList(ANNOTATIONS.deniedPub, a[ANNOTATIONS.deniedPub], false, warnings);
  const subDeny = parseList(ANNOTATIONS.deniedSub, a[ANNOTATIONS.deniedSub], false, warnings);
  return {
    permissions: {
      pub: { allow: pubAllow, deny: pubDeny },
      sub: { allow: subAllow, deny: subDeny },
      // ttl 0 lets the server apply its default response window (2 minutes).
      resp: { max: 1, ttl: 0 },
    },
    warnings,
  };
}
