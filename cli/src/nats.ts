import { randomBytes } from 'node:crypto';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createAccount, createCurve } from '@nats-io/nkeys';
import {
  buildPermissions,
  loadConfig,
  startNatsCallout,
  type NatsCallout,
} from '@precinct/nats-callout';
import type { NatsClientView } from '@precinct/dashboard';
import type { Logger } from '@precinct/runtime';

/**
 * The NATS part of `precinct up`: a nats-server found on this machine (auth callout needs
 * >= 2.10), configured so every client but the callout's own user is decided by the callout,
 * and the callout itself, verifying ServiceAccount tokens against kube-dev's JWKS.
 */

const MIN_MINOR = 10;
export const NATS_HOWTO =
  'go install github.com/nats-io/nats-server/v2@v2.15.2 (lands in $(go env GOPATH)/bin)';

/** Where a nats-server >= 2.10 is, or why none is usable. */
export function findNatsServer(
  env: NodeJS.ProcessEnv = process.env,
): { path: string; version: string } | { missing: string } {
  const dirs = [
    ...(env.PATH ?? '').split(delimiter),
    join(env.GOPATH ?? join(homedir(), 'go'), 'bin'),
  ];
  const candidates = env.PRECINCT_NATS_SERVER_BIN
    ? [env.PRECINCT_NATS_SERVER_BIN]
    : dirs.filter(Boolean).map((d) => join(d, 'nats-server'));
  let old: string | undefined;
  for (const path of candidates) {
    if (!existsSync(path)) continue;
    const out = spawnSync(path, ['--version'], { encoding: 'utf8', timeout: 5000 }).stdout ?? '';
    const m = /v?(\d+)\.(\d+)\.(\d+)/.exec(out);
    if (!m) continue;
    const version = `${m[1]}.${m[2]}.${m[3]}`;
    if (Number(m[1]) > 2 || (Number(m[1]) === 2 && Number(m[2]) >= MIN_MINOR)) {
      return { path, version };
    }
    old ??= `${path} is ${version}`;
  }
  return {
    missing: `${old ? `${old}; ` : ''}no nats-server >= 2.${MIN_MINOR} found (auth callout needs it): ${NATS_HOWTO}`,
  };
}

function reachable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export interface LocalNats {
  url: string;
  pid: number;
  callout: NatsCallout;
  healthUrl: string;
  /** nats-server's monitoring endpoint (loopback), e.g. for /connz. */
  monitorUrl: string;
  close(): Promise<void>;
}

/** Starts nats-server (logs to `logFile`) and the callout. Keys live in `dir` (0600 in 0700). */
export async function startLocalNats(o: {
  binary: string;
  dir: string;
  logFile: string;
  port: number;
  healthPort: number;
  advertiseHost: string;
  kube: { url: string; issuer: string; caFile: string; kubeconfigPath: string };
  logger: Logger;
}): Promise<LocalNats> {
  mkdirSync(o.dir, { recursive: true, mode: 0o700 });
  const dec = (b: Uint8Array) => new TextDecoder().decode(b);
  // Fresh keys per start: nothing outlives the server that trusts them.
  const account = createAccount();
  const xkey = createCurve();
  const password = randomBytes(24).toString('base64url');
  const secret = (name: string, content: string) => {
    const p = join(o.dir, name);
    writeFileSync(p, content, { mode: 0o600 });
    return p;
  };
  const accountSeed = secret('account.seed', dec(account.getSeed()));
  const xkeySeed = secret('xkey.seed', dec(xkey.getSeed()));
  const conf = secret(
    'nats-server.conf',
    [
      // Port 0 = any free port (tests): the server writes the port it got to the ports file.
      `listen: "[::]:${o.port === 0 ? -1 : o.port}"`,
      `ports_file_dir: ${JSON.stringify(o.dir)}`,
      // Monitoring on loopback only: the dashboard's NATS view reads /connz from it.
      'http: "127.0.0.1:-1"',
      'accounts {',
      `  AUTH { users: [ { user: callout, password: "${password}" } ] }`,
      '  APP { }',
      '}',
      'authorization {',
      '  auth_callout {',
      `    issuer: "${account.getPublicKey()}"`,
      '    auth_users: [ callout ]',
      '    account: AUTH',
      `    xkey: "${xkey.getPublicKey()}"`,
      '  }',
      '}',
      '',
    ].join('\n'),
  );
  const log = openSync(o.logFile, 'a', 0o600);
  const child: ChildProcess = spawn(o.binary, ['-c', conf], {
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stopServer = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(5000)]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  };
  try {
    let port = 0;
    let monitorUrl = '';
    for (let i = 0; ; i++) {
      const info = join(o.dir, `nats-server_${child.pid}.ports`);
      if (existsSync(info)) {
        try {
          const ports = JSON.parse(readFileSync(info, 'utf8')) as {
            nats?: string[];
            monitoring?: string[];
          };
          const u = ports.nats?.[0];
          port = u ? Number(new URL(u).port) : 0;
          monitorUrl = ports.monitoring?.[0] ?? '';
        } catch {
          /* being written */
        }
      }
      if (port > 0 && (await reachable(port))) break;
      if (child.exitCode !== null || i > 150) {
        throw new Error(
          `nats-server did not start${o.port ? ` on port ${o.port} (in use? choose another with --nats-port)` : ''}; see ${o.logFile}`,
        );
      }
      await sleep(100);
    }
    const config = loadConfig({
      NATS_URL: `nats://callout:${password}@127.0.0.1:${port}`,
      NATS_SIGNING_KEY_FILE: accountSeed,
      NATS_XKEY_SEED_FILE: xkeySeed,
      NATS_ACCOUNT: 'APP',
      K8S_IN_CLUSTER: 'false',
      KUBECONFIG: o.kube.kubeconfigPath,
      JWKS_URL: `${o.kube.url}/openid/v1/jwks`,
      JWKS_CA_FILE: o.kube.caFile,
      JWT_ISSUER: o.kube.issuer,
      HOST: '::',
      PORT: String(o.healthPort),
    });
    const callout = await startNatsCallout(config, { logger: o.logger });
    return {
      url: `nats://${o.advertiseHost}:${port}`,
      pid: child.pid!,
      callout,
      healthUrl: `http://127.0.0.1:${callout.port}/ready`,
      monitorUrl,
      close: async () => {
        await callout.close();
        await stopServer();
      },
    };
  } catch (err) {
    await stopServer();
    throw err;
  }
}

interface Connz {
  connections?: Array<{
    name?: string;
    account?: string;
    authorized_user?: string;
    start?: string;
    subscriptions_list?: string[];
  }>;
}

/**
 * The clients connected to nats-server, from its monitoring endpoint, with what each may use:
 * the callout names each user after its ServiceAccount (`system:serviceaccount:NS:NAME`), so
 * the grants are recomputed from that ServiceAccount's annotations with the callout's own rules.
 */
export async function natsClients(
  monitorUrl: string,
  trustDomain: string,
  annotationsOf: (namespace: string, name: string) => Promise<Record<string, string>>,
): Promise<NatsClientView[]> {
  const res = await fetch(`${monitorUrl}/connz?auth=true&subs=true&limit=256`, {
    signal: AbortSignal.timeout(5000),
  });
  if (!res.ok) throw new Error(`nats-server monitoring answered ${res.status}`);
  const connz = (await res.json()) as Connz;
  const out: NatsClientView[] = [];
  for (const c of connz.connections ?? []) {
    if (c.account === 'AUTH') continue; // the callout's own connection
    const m = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(c.authorized_user ?? '');
    let pub: string[] = [];
    let sub: string[] = c.subscriptions_list ?? [];
    if (m) {
      const { permissions } = buildPermissions({
        namespace: m[1]!,
        serviceAccount: m[2]!,
        annotations: await annotationsOf(m[1]!, m[2]!).catch(() => ({})),
      });
      pub = permissions.pub.allow;
      sub = permissions.sub.allow;
    }
    out.push({
      name: c.name || c.authorized_user || '(unnamed)',
      ...(c.account ? { account: c.account } : {}),
      ...(m ? { spiffeId: `spiffe://${trustDomain}/ns/${m[1]}/sa/${m[2]}` } : {}),
      pub,
      sub,
      ...(c.start ? { connectedAt: c.start } : {}),
    });
  }
  return out;
}
