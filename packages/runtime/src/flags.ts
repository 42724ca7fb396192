import { parseArgs } from 'node:util';
import { UsageError } from './command.js';

export interface FlagSpec {
  type: 'string' | 'boolean';
  /** One line for --help. */
  description: string;
  default?: string | boolean;
  /** Shown in --help as the value placeholder. */
  placeholder?: string;
  multiple?: boolean;
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
 * UsageError on an unknown flag, a missing value or a positional argument.
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
  for (const [name, s] of Object.entries(specs)) {
    if (values[name] === undefined && s.default !== undefined) values[name] = s.default;
  }
  return values;
}
