import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { UsageError, parseFlags, type Command } from '@precinct/runtime';
import { createDelegationIssuer, type DelegationIssuer } from '@precinct/delegation';

/** The local platform's delegation issuer (`precinct up`); never dialed, keys are local files. */
export const LOCAL_DELEGATION_ISSUER = 'https://delegation.precinct.local';
/** The audience the local audit store expects: its RBAC resource name. */
export const LOCAL_AUDIT_AUDIENCE = 'data-storage-service';

export interface LocalDelegationKeys {
  issuer: DelegationIssuer;
  jwks: { keys: JWK[] };
}

/**
 * The Ed25519 key of the local delegation issuer in `<dataDir>/delegation/signing-key.pem`
 * (0600 in a 0700 directory), created when `create` and missing.
 */
export async function localDelegationKeys(
  dataDir: string,
  create: boolean,
): Promise<LocalDelegationKeys> {
  const dir = resolve(dataDir, 'delegation');
  const keyPath = resolve(dir, 'signing-key.pem');
  if (!existsSync(keyPath)) {
    if (!create)
      throw new UsageError(
        `no delegation key in ${dir}: start the local platform first (precinct up --data-dir ${dataDir})`,
      );
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const { privateKey } = generateKeyPairSync('ed25519');
    writeFileSync(keyPath, privateKey.export({ format: 'pem', type: 'pkcs8' }), {
      mode: 0o600,
      flag: 'wx',
    });
  }
  const privateKey = createPrivateKey(readFileSync(keyPath));
  const kid = await calculateJwkThumbprint(
    createPublicKey(privateKey).export({ format: 'jwk' }) as JWK,
  );
  const issuer = createDelegationIssuer({
    issuer: LOCAL_DELEGATION_ISSUER,
    privateKey,
    kid,
    alg: 'EdDSA',
  });
  return { issuer, jwks: await issuer.jwks() };
}

const SUMMARY = 'Issue a delegation token from the local platform (an agent acting for a person)';

/** `precinct delegate`: prints a token `precinct up`'s audit store accepts as on_behalf_of. */
export const delegateCommand: Command = {
  name: 'delegate',
  summary: SUMMARY,
  async run(argv) {
    const flags = parseFlags(
      'delegate',
      SUMMARY,
      argv,
      {
        subject: {
          type: 'string',
          description: 'the person the agent acts for (the token sub)',
          placeholder: 'NAME',
        },
        actor: {
          type: 'string',
          multiple: true,
          description:
            'the agent presenting the token, exactly as the service verifies it (system:serviceaccount:NS:SA or a SPIFFE ID); repeat for a chain, current actor first',
          placeholder: 'ID',
        },
        audience: {
          type: 'string',
          description: `the service the token is for (default: ${LOCAL_AUDIT_AUDIENCE}, the audit store)`,
          placeholder: 'NAME',
        },
        ttl: {
          type: 'string',
          description: 'lifetime in seconds, at most 3600 (default: 300)',
          placeholder: 'SECONDS',
        },
        'data-dir': {
          type: 'string',
          description: "the local platform's data directory (default: .precinct)",
          placeholder: 'DIR',
        },
      },
      `Send the token in the Precinct-Delegation header next to the agent's own credentials.`,
    );
    if (!flags) return;
    const subject = flags.subject;
    const actors = (flags.actor as string[] | undefined) ?? [];
    if (typeof subject !== 'string' || subject === '')
      throw new UsageError('--subject is required');
    if (actors.length === 0 || actors.some((a) => a === ''))
      throw new UsageError('--actor is required (the verified identity of the agent)');
    const ttl = flags.ttl === undefined ? 300 : Number(flags.ttl);
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > 3600)
      throw new UsageError('--ttl must be a whole number of seconds, 1..3600');
    const dataDir = resolve(String(flags['data-dir'] ?? '.precinct'));
    const { issuer } = await localDelegationKeys(dataDir, false);
    console.log(
      await issuer.issue({
        subject,
        actors,
        audience: (flags.audience as string | undefined) ?? LOCAL_AUDIT_AUDIENCE,
        ttlSeconds: ttl,
      }),
    );
  },
};
