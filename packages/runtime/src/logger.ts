import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Paths pino blanks out in every Precinct log line. Redaction is configured at creation so a
 * token can never reach a log by accident; reasons are logged, credentials never.
 */
export const REDACT_PATHS = [
  'token',
  '*.token',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
  'req.headers.cookie',
  'password',
  '*.password',
  'seed',
  '*.seed',
  'privateKey',
  '*.privateKey',
];

/** A JSON logger on stderr (stdout stays free for what a command prints for people). */
export function createLogger(
  name: string,
  level = process.env.LOG_LEVEL ?? 'info',
  destination: NodeJS.WritableStream | number = 2,
): Logger {
  const dest =
    typeof destination === 'number'
      ? pino.destination({ fd: destination, sync: true })
      : destination;
  return pino(
    { name, level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } },
    dest as pino.DestinationStream,
  );
}
