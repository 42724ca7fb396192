// The demo as a cluster runs it: each service and the dashboard its own process started by the
// `precinct` binary (`precinct demo <service>`), with its own Workload API address (or its SVID
// picked by SPIFFE ID from a Workload API that serves several), peers named by URL + SPIFFE ID.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = 'cli/bin/precinct.js';

export type DemoService =
  'policy-service' | 'document-service' | 'user-service' | 'agent-service' | 'dashboard';

export interface DemoProcess {
  name: DemoService;
  /** `https://` (mTLS) or, for the dashboard, `http://`. */
  url: string;
  healthUrl: string;
  spiffeId: string;
  child: ChildProcess;
  /** Everything the process wrote so far (stdout and stderr). */
  output(): string;
  stop(): Promise<void>;
}

/** Runs `precinct <args>` to completion: exit code and output. */
export function runPrecinct(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: ROOT,
      env: { ...process.env, LOG_LEVEL: 'error', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * Starts `precinct demo <name> <args>` and resolves once it printed where it serves. Rejects
 * with its output if it exits first or takes longer than `timeoutMs` (a liveness bound only).
 */
export function spawnDemo(
  name: DemoService,
  args: string[],
  env: NodeJS.ProcessEnv,
  timeoutMs = 120_000,
): Promise<DemoProcess> {
  const child = spawn(process.execPath, [BIN, 'demo', name, ...args], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exited = true;
      resolve();
    }),
  );
  const stop = async () => {
    if (!exited) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exit;
      clearTimeout(killer);
    }
  };
  return new Promise<DemoProcess>((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop();
      reject(new Error(`demo ${name} did not start in ${timeoutMs} ms:\n${out}`));
    }, timeoutMs);
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const id = new RegExp(`^demo ${name} as (\\S+)`, 'm').exec(out);
      const url = /^ {2}(?:mTLS|web) +(\S+)$/m.exec(out);
      const health = /^ {2}probes +(\S+)$/m.exec(out);
      if (id && url && health) {
        clearTimeout(timer);
        resolve({
          name,
          url: url[1]!,
          healthUrl: health[1]!,
          spiffeId: id[1]!,
          child,
          output: () => out,
          stop,
        });
      }
    });
    void exit.then(() => {
      clearTimeout(timer);
      reject(new Error(`demo ${name} exited (${child.exitCode}):\n${out}`));
    });
  });
}

/**
 * Starts `precinct token-service <args>` and resolves with its base URL and SPIFFE ID once it
 * printed them (the chart runs it this way).
 */
export function spawnTokenService(
  args: string[],
  env: NodeJS.ProcessEnv,
  timeoutMs = 120_000,
): Promise<{ url: string; spiffeId: string; stop(): Promise<void>; output(): string }> {
  const child = spawn(process.execPath, [BIN, 'token-service', ...args], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exited = true;
      resolve();
    }),
  );
  const stop = async () => {
    if (exited) return;
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    await exit;
    clearTimeout(killer);
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop();
      reject(new Error(`token-service did not start in ${timeoutMs} ms:\n${out}`));
    }, timeoutMs);
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      const id = /^token-service for trust domain \S+ as (\S+)/m.exec(out);
      const endpoint = /^token endpoint (\S+)\/token /m.exec(out);
      if (id && endpoint) {
        clearTimeout(timer);
        resolve({ url: endpoint[1]!, spiffeId: id[1]!, stop, output: () => out });
      }
    });
    void exit.then(() => {
      clearTimeout(timer);
      reject(new Error(`token-service exited (${child.exitCode}):\n${out}`));
    });
  });
}

/**
 * The token service's grants file for the demo when the policy decides the scope
 * (`--policy`), as the Helm chart renders it: consent only, as the reference's scenarios.
 */
export function demoConsentFile(
  td: string,
  consent: Readonly<Record<string, readonly string[]>>,
): string {
  const user = (u: string) => `spiffe://${td}/user/${u}`;
  const agent = (a: string) => `spiffe://${td}/agent/${a}`;
  return JSON.stringify({
    consent: Object.fromEntries(Object.entries(consent).map(([u, as]) => [user(u), as.map(agent)])),
  });
}

/** Where each demo process gets its identity: a Workload API address and, optionally, which SVID. */
export interface DemoIdentity {
  address: string;
  /** `--spiffe-id`: needed when the Workload API serves this process several workloads' SVIDs. */
  spiffeId?: string;
}

export interface DemoProcessesOptions {
  identities: Record<DemoService, DemoIdentity>;
  /** The SPIFFE IDs the services have (their peers pin these). */
  ids: Record<DemoService, string>;
  tokenService: { url: string; spiffeId: string };
  audit?: { url: string; spiffeId: string };
  /** Where the dashboard writes its ID-token JWKS (serve it with `jwksFileServer`). */
  idpJwksFile: string;
  demoUsersFile: string;
  /** `--demo-users-from`: passwords the dashboard copies to `demoUsersFile` at start. */
  demoUsersFrom?: string;
  trustDomain: string;
}

export interface DemoProcesses {
  processes: Record<DemoService, DemoProcess>;
  dashboardUrl: string;
  close(): Promise<void>;
}

/** The five processes in dependency order, on loopback with ephemeral ports. */
export async function startDemoProcesses(o: DemoProcessesOptions): Promise<DemoProcesses> {
  const started: DemoProcess[] = [];
  const close = async () => {
    for (const p of [...started].reverse()) await p.stop();
  };
  const start = async (name: DemoService, args: string[]) => {
    const id = o.identities[name];
    const p = await spawnDemo(
      name,
      [
        '--listen',
        '127.0.0.1:0',
        '--health-listen',
        '127.0.0.1:0',
        '--trust-domain',
        o.trustDomain,
        ...(id.spiffeId ? ['--spiffe-id', id.spiffeId] : []),
        ...args,
      ],
      { SPIFFE_ENDPOINT_SOCKET: id.address },
    );
    started.push(p);
    return p;
  };
  const token = [
    '--token-service',
    o.tokenService.url,
    '--token-service-id',
    o.tokenService.spiffeId,
  ];
  try {
    const policy = await start('policy-service', ['--caller', o.ids['document-service']]);
    const documents = await start('document-service', [
      ...token,
      '--policy-service',
      policy.url,
      '--policy-service-id',
      policy.spiffeId,
      '--user-service-id',
      o.ids['user-service'],
      ...(o.audit ? ['--audit-store', o.audit.url, '--audit-store-id', o.audit.spiffeId] : []),
    ]);
    const peerDocs = [
      '--document-service',
      documents.url,
      '--document-service-id',
      documents.spiffeId,
    ];
    const asDashboard = ['--caller', o.ids.dashboard];
    const users = await start('user-service', [...token, ...peerDocs, ...asDashboard]);
    const agents = await start('agent-service', [...token, ...peerDocs, ...asDashboard]);
    const dashboard = await start('dashboard', [
      ...token,
      '--user-service',
      users.url,
      '--user-service-id',
      users.spiffeId,
      '--agent-service',
      agents.url,
      '--agent-service-id',
      agents.spiffeId,
      '--demo-users-file',
      o.demoUsersFile,
      ...(o.demoUsersFrom ? ['--demo-users-from', o.demoUsersFrom] : []),
      '--idp-jwks-out',
      o.idpJwksFile,
      ...[policy, documents, users, agents].flatMap((p) => [
        '--status',
        `${p.name}=${p.healthUrl}`,
      ]),
    ]);
    return {
      processes: {
        'policy-service': policy,
        'document-service': documents,
        'user-service': users,
        'agent-service': agents,
        dashboard,
      },
      dashboardUrl: dashboard.url,
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * Serves the keys of JWKS files over loopback HTTP, merged and read at each request: the token
 * service is started (and needs a JWKS URL) before the dashboard processes that write the files.
 */
export async function jwksFileServer(
  ...files: string[]
): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((_req, res) => {
    Promise.all(
      files.map(async (f) => {
        try {
          return (JSON.parse(await readFile(f, 'utf8')) as { keys: unknown[] }).keys;
        } catch {
          return [];
        }
      }),
    ).then(
      (lists) =>
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ keys: lists.flat() })),
      () => res.writeHead(500).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/jwks.json`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A scenario of the reference table with its person and agent moved to trust domain `td`. */
export function inTrustDomain<T extends { input: { person?: string; agent?: string } }>(
  s: T,
  td: string,
): T {
  const move = (id: string | undefined) =>
    id === undefined ? undefined : `spiffe://${td}/${id.split('/').slice(3).join('/')}`;
  const person = move(s.input.person);
  const agent = move(s.input.agent);
  return {
    ...s,
    input: {
      ...s.input,
      ...(person ? { person } : {}),
      ...(agent ? { agent } : {}),
    },
  };
}
