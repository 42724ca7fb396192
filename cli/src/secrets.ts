import { UsageError, parseFlags, type Command } from '@precinct/runtime';
import { VaultAdmin, workloadPolicy } from '@precinct/secrets';

const SUMMARY =
  'Configure OpenBao/Vault for SPIFFE workloads: JWT auth trusting the identity server, a role + policy per workload';

/**
 * `precinct secrets configure`: the admin token comes from VAULT_TOKEN (never a flag, so it
 * stays out of shell history and process lists); the address from --addr or VAULT_ADDR.
 */
export const secretsCommand: Command = {
  name: 'secrets',
  summary: SUMMARY,
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub !== 'configure') {
      throw new UsageError(
        'usage: precinct secrets configure --issuer URL [--workload ...] (see --help)',
      );
    }
    const flags = parseFlags(
      'secrets configure',
      SUMMARY,
      rest,
      {
        addr: {
          type: 'string',
          description: 'server URL (default: $VAULT_ADDR)',
          placeholder: 'URL',
        },
        issuer: {
          type: 'string',
          description:
            "the identity server's OIDC issuer (OIDC discovery at ISSUER/.well-known/openid-configuration)",
          placeholder: 'URL',
        },
        'jwks-url': {
          type: 'string',
          description: 'use this JWKS instead of OIDC discovery',
          placeholder: 'URL',
        },
        mount: {
          type: 'string',
          description: 'JWT auth mount (default: jwt)',
          placeholder: 'PATH',
        },
        audience: {
          type: 'string',
          description: 'JWT-SVID audience bound in roles (default: vault)',
          placeholder: 'AUD',
        },
        workload: {
          type: 'string',
          multiple: true,
          description:
            'ROLE=SPIFFE_ID: a role bound to that SPIFFE ID, with a policy of the same name',
          placeholder: 'ROLE=ID',
        },
        kv: {
          type: 'string',
          multiple: true,
          description:
            'ROLE=PATH: KV v2 paths (under secret/) the role may read, e.g. orders=apps/orders/*',
          placeholder: 'ROLE=PATH',
        },
        'db-role': {
          type: 'string',
          multiple: true,
          description: 'ROLE=DBROLE: database secrets engine roles the role may lease',
          placeholder: 'ROLE=DBROLE',
        },
      },
      'The admin token is read from VAULT_TOKEN.',
    );
    if (!flags) return;
    const address = (flags.addr as string | undefined) ?? process.env.VAULT_ADDR;
    const token = process.env.VAULT_TOKEN;
    const issuer = flags.issuer as string | undefined;
    const problems: string[] = [];
    if (!address) problems.push('--addr or VAULT_ADDR is required');
    if (!token) problems.push('VAULT_TOKEN is required (an admin token)');
    if (!issuer) problems.push('--issuer is required');
    const pairs = (name: string) =>
      ((flags[name] as string[] | undefined) ?? []).map((v) => {
        const i = v.indexOf('=');
        if (i <= 0) problems.push(`--${name} ${v}: expected ROLE=VALUE`);
        return [v.slice(0, i), v.slice(i + 1)] as const;
      });
    const workloads = pairs('workload');
    const kv = pairs('kv');
    const db = pairs('db-role');
    for (const [role] of [...kv, ...db]) {
      if (role && !workloads.some(([r]) => r === role))
        problems.push(`role ${role} has no --workload`);
    }
    if (problems.length > 0) throw new UsageError(problems.join('; '));
    const admin = new VaultAdmin({ address: address!, token: token! });
    const mount = (flags.mount as string | undefined) ?? 'jwt';
    const audience = (flags.audience as string | undefined) ?? 'vault';
    await admin.configureJwtAuth({
      issuer: issuer!,
      jwksUrl: flags['jwks-url'] as string | undefined,
      mount,
    });
    console.log(`auth/${mount}: JWT auth trusting ${issuer}`);
    for (const [role, spiffeId] of workloads) {
      const policy = workloadPolicy({
        kvPaths: kv.filter(([r]) => r === role).map(([, p]) => p),
        databaseRoles: db.filter(([r]) => r === role).map(([, d]) => d),
      });
      if (policy) await admin.writePolicy(role, policy);
      await admin.writeWorkloadRole({
        role,
        spiffeId,
        audience,
        policies: policy ? [role] : [],
        mount,
      });
      console.log(
        `role ${role}: ${spiffeId} (audience ${audience})${policy ? `, policy ${role}` : ''}`,
      );
    }
  },
};
