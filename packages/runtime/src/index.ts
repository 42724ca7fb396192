export { UsageError, type Command } from './command.js';
export { parseFlags, type FlagSpec, type ParsedFlags } from './flags.js';
export { createLogger, type Logger, REDACT_PATHS } from './logger.js';
export { listen, listenOptionsFromEnv, formatHostPort, type ListenOptions } from './listen.js';
export { waitForShutdown } from './shutdown.js';
