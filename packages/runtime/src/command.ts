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
