import { parseArgs } from 'node:util';
import { UsageError } from './command.js';
import { parseDatabaseUrl, parseDuration, parseHttpUrl, parseListen, parsePort } from './values.js';

/** What a string flag holds; parseFlags checks it, so a typo fails start-up with its name. */
export type FlagKind = 'port' | 'listen' | 'duration' | 'http-url' | 'database-url';

const CHECK: Record<FlagKind, (raw: string, name: string) => unknown> = {
  port: parsePort,
  listen: (raw, name) => parseListen(raw, name),
  duration: parseDuration,
  'http-url': parseHttpUrl,
  'database-url': parseDatabaseUrl,
};

export interface FlagSpec {
  type: 'string' | 'boolean';
  /** One line for --help. */
  description: string;
  default?: string | boolean;
  /** Shown in --help as the value placeholder. */
  placeholder?: string;
  multiple?: boolean;
  /** Checked after defaults are applied; the value stays the string given. */
  kind?: FlagKind;
  /** Flags that cannot be given together with this one. */
  conflicts?: string[];
  /** Flags that must be given whenever this one is. */
  requires?: string[];
}

export type ParsedFlags = Record<string, string | boolean | string[] | undefined>;

function helpText(command: string, summary: string, specs: Record<string, FlagSpec>): string {
  const rows = Object.entries(specs).map(([name, s]) => {
    const left = s.type === 'string' ? `--${name} ${s.placeholder ?? 'VALUE'}` : `--${name}`;
    const def = s.default !== undefined && s.default !== false ? ` (default: ${s.default})` : '';
    return [left, `${s.description}${def}`] as const;
  });
  rows.push(['--help', 'show this help']);
  const width = Math.max(...rows.map(([l]) => l.length));
  return [
    `Usage: precinct ${command} [flags]`,
    '',
    summary,
    '',
    'Flags:',
    ...rows.map(([l, r]) => `  ${l.padEnd(width)}  ${r}`),
  ].join('\n');
}

/**
 * Parses `argv` strictly against `specs`. Prints help and returns undefined on --help; throws
 * UsageError on an unknown flag, a missing value or a positional argument, and on values that
 * fail their `kind`, `conflicts` or `requires`: every such problem at once, one line each.
 */
export function parseFlags(
  command: string,
  summary: string,
  argv: string[],
  specs: Record<string, FlagSpec>,
  extraHelp = '',
): ParsedFlags | undefined {
  const options: Record<
    string,
    { type: 'string' | 'boolean'; multiple?: boolean; default?: string | boolean }
  > = { help: { type: 'boolean' } };
  for (const [name, s] of Object.entries(specs)) {
    options[name] = { type: s.type, ...(s.multiple ? { multiple: true } : {}) };
  }
  let values: ParsedFlags;
  try {
    const parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
    values = { ...parsed.values } as ParsedFlags;
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  if (values.help) {
    console.log(helpText(command, summary, specs) + (extraHelp ? `\n\n${extraHelp}` : ''));
    return undefined;
  }
  const given = new Set(Object.keys(values).filter((k) => values[k] !== undefined));
  for (const [name, s] of Object.entries(specs)) {
    if (values[name] === undefined && s.default !== undefined) values[name] = s.default;
  }
  const problems: string[] = [];
  const pairs = new Set<string>();
  for (const [name, s] of Object.entries(specs)) {
    const v = values[name];
    if (s.kind && v !== undefined) {
      for (const one of Array.isArray(v) ? v : [v]) {
        try {
          CHECK[s.kind](String(one), `--${name}`);
        } catch (err) {
          problems.push(err instanceof Error ? err.message : String(err));
        }
      }
    }
    if (!given.has(name)) continue;
    for (const other of s.conflicts ?? []) {
      const pair = [name, other].sort().join(' ');
      if (given.has(other) && !pairs.has(pair)) {
        pairs.add(pair);
        problems.push(`--${name} and --${other} cannot be used together`);
      }
    }
    for (const other of s.requires ?? []) {
      if (!given.has(other)) problems.push(`--${name} needs --${other} as well`);
    }
  }
  if (problems.length > 0) throw new UsageError(problems.join('\n'));
  return values;
}
