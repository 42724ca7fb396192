import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError, parseFlags, type Command, type FlagSpec } from '@precinct/runtime';
import type { Entry, EntryInput } from '../entries.js';
import { DEFAULT_DATA_DIR, parseDuration } from './values.js';

// SPIRE's flag names (`-spiffeID`, `-x509SVIDTTL`) and their kebab-case forms.
const SPIRE_NAMES: Record<string, string> = {
  spiffeID: 'spiffe-id',
  entryID: 'entry-id',
  id: 'entry-id',
  x509SVIDTTL: 'x509-svid-ttl',
  jwtSVIDTTL: 'jwt-svid-ttl',
  federatesWith: 'federates-with',
  dnsName: 'dns',
  serverURL: 'admin-url',
};

/** Rewrites `-spiffeID x`, `--spiffeID=x` and `-dns x` to the kebab-case long flags. */
export function normalizeEntryFlags(argv: string[]): string[] {
  return argv.map((a) => {
    const m = /^--?([A-Za-z][A-Za-z0-9-]*)(=.*)?$/.exec(a);
    if (!m) return a;
    const name = SPIRE_NAMES[m[1]!] ?? m[1]!.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();
    return `--${name}${m[2] ?? ''}`;
  });
}

const entryFlags: Record<string, FlagSpec> = {
  'entry-id': { type: 'string', description: 'entry ID (show, update, delete)', placeholder: 'ID' },
  'spiffe-id': { type: 'string', description: 'SPIFFE ID the entry issues', placeholder: 'ID' },
  selector: {
    type: 'string',
    multiple: true,
    description: 'type:value, repeatable; all must match (k8s:ns:default)',
    placeholder: 'SEL',
  },
  'x509-svid-ttl': {
    type: 'string',
    description: 'X.509-SVID lifetime (default 1h)',
    placeholder: 'DURATION',
  },
  'jwt-svid-ttl': {
    type: 'string',
    description: 'JWT-SVID lifetime (default 5m)',
    placeholder: 'DURATION',
  },
  dns: {
    type: 'string',
    multiple: true,
    description: 'DNS name for the X.509-SVID, repeatable',
    placeholder: 'NAME',
  },
  hint: { type: 'string', description: 'label telling SVIDs apart', placeholder: 'TEXT' },
  'federates-with': {
    type: 'string',
    multiple: true,
    description: 'trust domain, repeatable',
    placeholder: 'TD',
  },
  admin: { type: 'boolean', description: 'mark the entry as admin' },
  'admin-url': {
    type: 'string',
    description: 'admin API URL (default: <data-dir>/admin.url)',
    placeholder: 'URL',
  },
  'token-file': {
    type: 'string',
    description: 'admin token file (default: <data-dir>/admin.token)',
    placeholder: 'PATH',
  },
  'data-dir': {
    type: 'string',
    description: 'the identity server\u2019s data dir',
    default: DEFAULT_DATA_DIR,
    placeholder: 'DIR',
  },
  output: { type: 'string', description: 'text or json', default: 'text', placeholder: 'FORMAT' },
};

/** Where `precinct entry` prints; injectable for tests. */
export interface EntryIo {
  out(line: string): void;
  fetch?: typeof fetch;
}

function formatEntry(e: Entry): string {
  return [
    `Entry ID         : ${e.id}`,
    `SPIFFE ID        : ${e.spiffeId}`,
    ...e.selectors.map((s) => `Selector         : ${s.type}:${s.value}`),
    `X509-SVID TTL    : ${e.x509SvidTtl}`,
    `JWT-SVID TTL     : ${e.jwtSvidTtl}`,
    ...e.dnsNames.map((d) => `DNS name         : ${d}`),
    ...e.federatesWith.map((t) => `FederatesWith    : ${t}`),
    ...(e.hint ? [`Hint             : ${e.hint}`] : []),
    ...(e.admin ? ['Admin            : true'] : []),
    `Revision         : ${e.revision}`,
  ].join('\n');
}

const ENTRY_SUMMARIES: Record<string, string> = {
  create: 'Create a registration entry: a SPIFFE ID for workloads that match every selector.',
  show: 'Show one entry by -entryID, or the entries matching -spiffeID and/or -selector.',
  list: 'List every registration entry.',
  update: 'Change fields of the entry -entryID (only the flags given change).',
  delete: 'Delete the entry -entryID; workloads it matched stop receiving its SVIDs.',
};

/** `precinct entry create|show|list|update|delete`, printing through `io`. */
export async function runEntryCli(argv: string[], io: EntryIo): Promise<void> {
  const [sub, ...rest] = argv;
  const subs = ['create', 'show', 'list', 'update', 'delete'];
  if (!sub || sub === '--help' || sub === '-h') {
    io.out(
      [
        `Usage: precinct entry <${subs.join('|')}> [flags]`,
        '',
        "Manage the identity server's registration entries through its admin API.",
        '',
        'Subcommands:',
        ...subs.map((n) => `  ${n.padEnd(6)}  ${ENTRY_SUMMARIES[n]}`),
        '',
        'Run `precinct entry <subcommand> --help` for its flags.',
      ].join('\n'),
    );
    return;
  }
  if (!subs.includes(sub))
    throw new UsageError(`unknown subcommand "${sub}" (want ${subs.join(', ')})`);
  const f = parseFlags(
    `entry ${sub}`,
    ENTRY_SUMMARIES[sub]!,
    normalizeEntryFlags(rest),
    entryFlags,
  );
  if (!f) return;
  const output = f.output as string;
  if (output !== 'text' && output !== 'json') throw new UsageError('--output must be text or json');
  const dataDir = f['data-dir'] as string;
  const url = (
    (f['admin-url'] as string | undefined) ??
    (await readFile(join(dataDir, 'admin.url'), 'utf8').catch(() => ''))
  ).trim();
  if (!url)
    throw new UsageError(
      `no --admin-url and no ${join(dataDir, 'admin.url')}: is the identity server running?`,
    );
  const tokenFile = (f['token-file'] as string | undefined) ?? join(dataDir, 'admin.token');
  let token: string;
  try {
    token = (await readFile(tokenFile, 'utf8')).trim();
  } catch {
    throw new UsageError(`cannot read the admin token file ${tokenFile}`);
  }
  const id = f['entry-id'] as string | undefined;
  const filterOnly =
    sub === 'show' && !id && (f['spiffe-id'] !== undefined || f.selector !== undefined);
  if (sub !== 'create' && sub !== 'list' && !id && !filterOnly) {
    throw new UsageError(
      `entry ${sub} needs -entryID${sub === 'show' ? ', -spiffeID or -selector' : ''}`,
    );
  }

  const body: EntryInput & Record<string, unknown> = {};
  if (f['spiffe-id'] !== undefined) body.spiffeId = f['spiffe-id'] as string;
  if (f.selector !== undefined) body.selectors = f.selector as unknown as EntryInput['selectors'];
  if (f['x509-svid-ttl'] !== undefined)
    body.x509SvidTtl = parseDuration(f['x509-svid-ttl'] as string, 'x509SVIDTTL');
  if (f['jwt-svid-ttl'] !== undefined)
    body.jwtSvidTtl = parseDuration(f['jwt-svid-ttl'] as string, 'jwtSVIDTTL');
  if (f.dns !== undefined) body.dnsNames = f.dns as string[];
  if (f.hint !== undefined) body.hint = f.hint as string;
  if (f['federates-with'] !== undefined) body.federatesWith = f['federates-with'] as string[];
  if (f.admin) body.admin = true;
  if (sub === 'create' && (!body.spiffeId || !body.selectors)) {
    throw new UsageError('entry create needs -spiffeID and at least one -selector');
  }

  const call = async (method: string, path: string, payload?: unknown) => {
    let res: Response;
    try {
      res = await (io.fetch ?? fetch)(new URL(path, url), {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(payload !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(payload !== undefined ? { body: JSON.stringify(payload) } : {}),
      });
    } catch (err) {
      // undici says only "fetch failed"; the reason is in its cause (ECONNREFUSED, ...).
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const why =
        cause?.code === 'ECONNREFUSED'
          ? 'connection refused'
          : (cause?.code ?? cause?.message ?? String(err));
      throw new Error(
        `cannot reach the identity server's admin API at ${url} (${why}): is it running? ` +
          `Start it with \`precinct identity-server\` or \`precinct up\`, or pass --admin-url.`,
      );
    }
    const json = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    if (!res.ok) {
      const detail =
        typeof json.detail === 'string' ? json.detail : String(json.title ?? res.statusText);
      throw new Error(`${detail} (HTTP ${res.status})`);
    }
    return json;
  };
  const path = id ? `/v1/entries/${encodeURIComponent(id)}` : '/v1/entries';
  let result: Record<string, unknown>;
  switch (sub) {
    case 'create':
      result = await call('POST', '/v1/entries', body);
      break;
    case 'update':
      if (Object.keys(body).length === 0)
        throw new UsageError('entry update needs at least one field to change');
      result = await call('PATCH', path, body);
      break;
    case 'delete':
      result = await call('DELETE', path);
      break;
    case 'show':
      if (filterOnly) {
        // SPIRE's `entry show -spiffeID X -selector Y`: entries with that ID and all those selectors.
        const all = ((await call('GET', '/v1/entries')).entries as Entry[]) ?? [];
        const want = (body.selectors as string[] | undefined) ?? [];
        const entries = all.filter(
          (e) =>
            (!body.spiffeId || e.spiffeId === body.spiffeId) &&
            want.every((w) => e.selectors.some((s) => `${s.type}:${s.value}` === w)),
        );
        if (output === 'json') return io.out(JSON.stringify({ entries }, null, 2));
        return io.out(
          entries.length === 0
            ? 'Found 0 entries'
            : `Found ${entries.length} entries\n\n${entries.map(formatEntry).join('\n\n')}`,
        );
      }
      result = await call('GET', path);
      break;
    default:
      result = await call('GET', '/v1/entries');
  }
  if (output === 'json') return io.out(JSON.stringify(result, null, 2));
  if (sub === 'list') {
    const list = (result.entries as Entry[]) ?? [];
    io.out(
      list.length === 0
        ? 'Found 0 entries'
        : `Found ${list.length} entries\n\n${list.map(formatEntry).join('\n\n')}`,
    );
  } else {
    io.out(
      `${sub === 'delete' ? 'Deleted entry' : 'Entry'}\n${formatEntry(result as unknown as Entry)}`,
    );
  }
}

/** `precinct entry`: registration entries through the identity server's admin API. */
export const entryCommand: Command = {
  name: 'entry',
  summary: 'create, show, list, update and delete registration entries',
  run: (argv) => runEntryCli(argv, { out: (l) => console.log(l) }),
};
