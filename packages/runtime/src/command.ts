/** One `precinct <name>` subcommand. `run` resolves when the command is finished. */
export interface Command {
  name: string;
  summary: string;
  run(argv: string[]): Promise<void>;
}

/** A usage error: printed as one line plus a hint to --help, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/**
 * The error's message and its causes', each once: a wrapper such as "cannot listen on X"
 * often holds the sentence that says why ("port 6443 is already in use ...").
 */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; e !== undefined && e !== null && depth < 5; depth++) {
    const msg = e instanceof Error ? e.message : String(e);
    const last = parts[parts.length - 1];
    if (last !== undefined && msg.startsWith(last)) parts[parts.length - 1] = msg;
    else if (!parts.some((p) => p.includes(msg))) parts.push(msg);
    e = e instanceof Error ? e.cause : undefined;
  }
  return parts.join(': ');
}
