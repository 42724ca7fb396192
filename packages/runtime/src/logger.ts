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

/**
 * A JSON logger on stderr (stdout stays free for what a command prints for people), or on the
 * given destination: a file descriptor, a stream, or several streams that each get every line.
 */
export function createLogger(
  name: string,
  level = process.env.LOG_LEVEL ?? 'info',
  destination: NodeJS.WritableStream | number | Array<NodeJS.WritableStream | number> = 2,
): Logger {
  const one = (d: NodeJS.WritableStream | number) =>
    (typeof d === 'number' ? pino.destination({ fd: d, sync: true }) : d) as pino.DestinationStream;
  const dest = Array.isArray(destination)
    ? pino.multistream(destination.map((d) => ({ stream: one(d), level: level as pino.Level })))
    : one(destination);
  return pino({ name, level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, dest);
}
