/** Stable error codes of @precinct/nats-callout. */
export type NatsCalloutErrorCode = 'ERR_CONFIG' | 'ERR_CALLOUT_CLOSED';

/** Base error of this package: a stable `code` and an optional `cause`. */
export class NatsCalloutError extends Error {
  override name = 'NatsCalloutError';
  readonly code: NatsCalloutErrorCode;
  constructor(code: NatsCalloutErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** Misconfiguration found by loadConfig: every problem, one line each, naming the variable. */
export class ConfigError extends NatsCalloutError {
  override name = 'ConfigError';
  readonly problems: readonly string[];
  constructor(problems: string[]) {
    super('ERR_CONFIG', `invalid configuration:\n  ${problems.join('\n  ')}`);
    this.problems = problems;
  }
}
