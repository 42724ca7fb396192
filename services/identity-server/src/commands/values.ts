import { UsageError, parseDuration as parseDurationOf } from '@precinct/runtime';
import type { KeyType } from '../authority.js';

/**
 * `30`, `30s`, `5m`, `1h`, `2d`, `1h30m` to seconds (@precinct/runtime's one grammar); anything
 * else is a usage error naming `--flag`.
 */
export function parseDuration(v: string, flag: string): number {
  try {
    return parseDurationOf(v, `--${flag}`);
  } catch {
    throw new UsageError(
      `--${flag} must be seconds or a duration such as 30s, 5m, 1h or 1h30m, got "${v}"`,
    );
  }
}

export function keyType(v: string, flag: string): KeyType {
  if (v !== 'ec-p256' && v !== 'rsa-2048')
    throw new UsageError(`--${flag} must be ec-p256 or rsa-2048`);
  return v;
}

/** Where `precinct identity-server` keeps its state, and where `precinct entry` finds it. */
export const DEFAULT_DATA_DIR = '.precinct/identity-server';
