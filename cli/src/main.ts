import { UsageError, describeError, type Command } from '@precinct/runtime';

// Commands load lazily so `precinct --help` and one service never pay for the others.
const commands: Array<{ name: string; summary: string; load: () => Promise<Command> }> = [
  {
    name: 'up',
    summary: 'start the whole local platform (kube-dev, ...) and print where everything is',
    load: async () => (await import('./up.js')).upCommand,
  },
  {
    name: 'status',
    summary: 'show what a running `up` runs, where, and whether it is healthy (--json)',
    load: async () => (await import('./status.js')).statusCommand,
  },
  {
    name: 'logs',
    summary: 'print (or --follow) the service logs of `up`',
    load: async () => (await import('./status.js')).logsCommand,
  },
  {
    name: 'down',
    summary: 'stop the `up` running on a state folder',
    load: async () => (await import('./status.js')).downCommand,
  },
  {
    name: 'kube-dev',
    summary: 'a local Kubernetes auth API (TokenRequest, TokenReview, SAR, RBAC, OIDC)',
    load: async () => (await import('@precinct/kube-dev')).kubeDevCommand,
  },
  {
    name: 'identity-server',
    summary: 'a local SPIFFE issuer with the standard Workload API',
    load: async () => (await import('@precinct/identity-server')).identityServerCommand,
  },
  {
    name: 'entry',
    summary: 'create, show, list, update, delete registration entries of the identity server',
    load: async () => (await import('@precinct/identity-server')).entryCommand,
  },
  {
    name: 'nats-callout',
    summary: 'NATS auth callout: Kubernetes ServiceAccount tokens become NATS users',
    load: async () => (await import('@precinct/nats-callout')).natsCalloutCommand,
  },
  {
    name: 'audit-store',
    summary: 'tamper-evident audit events API with verified attribution',
    load: async () => (await import('@precinct/audit-store')).auditStoreCommand,
  },
  {
    name: 'token-service',
    summary: 'Transaction Tokens for a person and the agent acting for them (RFC 8693)',
    load: async () => (await import('@precinct/token-service')).tokenServiceCommand,
  },
  {
    name: 'demo',
    summary: 'run one demo service (user, agent, document, policy) or the dashboard on its own',
    load: async () => (await import('./demo-command.js')).demoCommand,
  },
  {
    name: 'secrets',
    summary:
      'configure OpenBao/Vault: JWT auth with SPIFFE JWT-SVIDs, a role + policy per workload',
    load: async () => (await import('./secrets.js')).secretsCommand,
  },
  {
    name: 'delegate',
    summary: 'issue a local delegation token (an agent acting for a person)',
    load: async () => (await import('./delegation.js')).delegateCommand,
  },
  {
    name: 'audit',
    summary: 'offline audit tools: verify-export checks a signed export',
    load: async () => (await import('./audit.js')).auditCommand,
  },
];

function usage(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    'Usage: precinct <command> [flags]',
    '',
    'Zero-trust identity for Kubernetes workloads and AI agents.',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Run `precinct <command> --help` for the flags of a command.',
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return 0;
  }
  if (name === '--version') {
    console.log('precinct 0.1.0');
    return 0;
  }
  const entry = commands.find((c) => c.name === name);
  if (!entry) {
    console.error(`precinct: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  const command = await entry.load();
  try {
    await command.run(rest);
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`precinct ${name}: ${err.message}\nRun \`precinct ${name} --help\`.`);
      return 2;
    }
    console.error(`precinct ${name}: ${describeError(err)}`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
