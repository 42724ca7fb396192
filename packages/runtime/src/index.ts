export { UsageError, describeError, type Command } from './command.js';
export { parseFlags, type FlagSpec, type FlagKind, type ParsedFlags } from './flags.js';
export { createLogger, type Logger, REDACT_PATHS } from './logger.js';
export {
  listen,
  listenOptionsFromEnv,
  formatHostPort,
  ListenError,
  type ListenOptions,
} from './listen.js';
export {
  parsePort,
  parseListen,
  parseDuration,
  parseHttpUrl,
  parseDatabaseUrl,
  redactUrl,
} from './values.js';
export { waitForShutdown } from './shutdown.js';
export {
  advertisedUrl,
  advertisedHost,
  isWildcardHost,
  LOOPBACK_ADVERTISE_HOST,
  type AdvertisedUrlOptions,
} from './url.js';
export {
  inClusterCredentials,
  podNamespace,
  serviceAccountPaths,
  SERVICE_ACCOUNT_DIR,
  type InClusterCredentials,
  type ServiceAccountPaths,
} from './incluster.js';
