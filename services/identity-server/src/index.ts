// Public API of @precinct/identity-server (an explicit allow-list).
export { startIdentityServer, type IdentityServer, type IdentityServerOptions } from './server.js';
export { identityServerCommand } from './commands/identity-server.js';
export { entryCommand } from './commands/entry.js';
export { IdentityServerError, type IdentityServerErrorCode } from './errors.js';
export type { Entry, EntryInput, Selector } from './entries.js';
export type { TokenVerifier, ServiceAccountIdentity, Attestation } from './attestation.js';
export type { KeyType, RotationEvent } from './authority.js';
export type { Clock } from './clock.js';
