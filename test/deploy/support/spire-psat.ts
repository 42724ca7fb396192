// A real SPIRE server whose agents attest with `k8s_psat`: the agent presents a projected,
// pod-bound ServiceAccount token; the server validates it by TokenReview at a Kubernetes API
// server and reads the token's pod and that pod's node from it (the agent's ID is derived from
// the node's UID). @precinct/testing's startSpire uses join_token; this launcher exists for the
// one test of node attestation against Kubernetes.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { requirePeer, tempDir } from '@precinct/testing';

const hcl = (s: string) => JSON.stringify(s);

function exec(bin: string, args: string[]): Promise<{ ok: boolean; out: string }> {
  return new Promise((resolve) => {
    execFile(bin, args, { timeout: 30_000 }, (err, stdout, stderr) =>
      resolve({ ok: !err, out: `${stdout}${stderr}` }),
    );
  });
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface PsatCluster {
  /** The cluster's name in SPIRE's configuration (part of every agent ID). */
  name: string;
  /** Admin kubeconfig SPIRE's server uses for TokenReview and to read pods and nodes. */
  kubeconfigPath: string;
  /** `namespace:serviceaccount` of the agents allowed to attest. */
  allow: string[];
}

export interface PsatAgent {
  workloadAddress: string;
  process: ChildProcess;
  /** Resolves true once the agent passes its health check, false if it exits first. */
  healthy: Promise<boolean>;
  stop(): Promise<void>;
}

export interface PsatSpire {
  trustDomain: string;
  server(args: string[]): Promise<string>;
  /** Starts an agent presenting the token in `tokenFile` (written by the caller). */
  startAgent(name: string, tokenFile: string): PsatAgent;
  log(): string;
  close(): Promise<void>;
}

export async function startPsatSpire(o: {
  trustDomain: string;
  cluster: PsatCluster;
  timeoutMs?: number;
}): Promise<PsatSpire> {
  const serverBin = requirePeer('spire-server');
  const agentBin = requirePeer('spire-agent');
  const timeoutMs = o.timeoutMs ?? 60_000;
  const tmp = tempDir('precinct-spire-psat-');
  const dir = tmp.path;
  const procs: ChildProcess[] = [];
  let text = '';
  const run = (name: string, bin: string, args: string[]) => {
    const p = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir });
    const capture = (b: Buffer) => {
      text += b
        .toString()
        .split('\n')
        .map((l) => (l ? `[${name}] ${l}` : l))
        .join('\n');
      if (text.length > 1_000_000) text = text.slice(-500_000);
    };
    p.stdout.on('data', capture);
    p.stderr.on('data', capture);
    procs.push(p);
    return p;
  };
  const stop = async (p: ChildProcess) => {
    if (p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
    p.kill('SIGTERM');
    const killer = setTimeout(() => p.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(killer);
  };
  let closed: Promise<void> | undefined;
  const close = () =>
    (closed ??= (async () => {
      for (const p of [...procs].reverse()) await stop(p);
      tmp.cleanup();
    })());
  const serverSocket = join(dir, 'server', 'api.sock');
  const server = async (args: string[]) => {
    const r = await exec(serverBin, [...args, '-socketPath', serverSocket]);
    if (!r.ok) throw new Error(`spire-server ${args.join(' ')}: ${r.out}`);
    return r.out;
  };
  try {
    mkdirSync(join(dir, 'server', 'data'), { recursive: true, mode: 0o700 });
    const port = await freePort();
    const conf = join(dir, 'server.conf');
    writeFileSync(
      conf,
      `server {
  bind_address = "127.0.0.1"
  bind_port = "${port}"
  socket_path = ${hcl(serverSocket)}
  trust_domain = ${hcl(o.trustDomain)}
  data_dir = ${hcl(join(dir, 'server', 'data'))}
  log_level = "INFO"
  ca_key_type = "ec-p256"
  ca_ttl = "24h"
  default_x509_svid_ttl = "1h"
}
plugins {
  DataStore "sql" {
    plugin_data {
      database_type = "sqlite3"
      connection_string = ${hcl(join(dir, 'server', 'data', 'datastore.sqlite3'))}
    }
  }
  KeyManager "disk" {
    plugin_data {
      keys_path = ${hcl(join(dir, 'server', 'data', 'keys.json'))}
    }
  }
  NodeAttestor "k8s_psat" {
    plugin_data {
      clusters = {
        ${hcl(o.cluster.name)} = {
          service_account_allow_list = ${JSON.stringify(o.cluster.allow)}
          kube_config_file = ${hcl(o.cluster.kubeconfigPath)}
        }
      }
    }
  }
}
`,
      { mode: 0o600 },
    );
    const serverProc = run('spire-server', serverBin, ['run', '-config', conf]);
    const deadline = Date.now() + timeoutMs;
    while (!(await exec(serverBin, ['healthcheck', '-socketPath', serverSocket])).ok) {
      if (serverProc.exitCode !== null || Date.now() > deadline)
        throw new Error(`spire-server did not start:\n${text.slice(-4000)}`);
      await sleep(250);
    }
    const bundlePath = join(dir, 'bundle.pem');
    writeFileSync(bundlePath, await server(['bundle', 'show', '-format', 'pem']), { mode: 0o600 });

    const startAgent = (name: string, tokenFile: string): PsatAgent => {
      const adir = join(dir, `agent-${name}`);
      mkdirSync(join(adir, 'data'), { recursive: true, mode: 0o700 });
      const socket = join(adir, 'api.sock');
      const aconf = join(adir, 'agent.conf');
      writeFileSync(
        aconf,
        `agent {
  data_dir = ${hcl(join(adir, 'data'))}
  log_level = "INFO"
  server_address = "127.0.0.1"
  server_port = "${port}"
  socket_path = ${hcl(socket)}
  trust_bundle_path = ${hcl(bundlePath)}
  trust_domain = ${hcl(o.trustDomain)}
}
plugins {
  NodeAttestor "k8s_psat" {
    plugin_data {
      cluster = ${hcl(o.cluster.name)}
      token_path = ${hcl(tokenFile)}
    }
  }
  KeyManager "memory" {
    plugin_data {}
  }
  WorkloadAttestor "unix" {
    plugin_data {}
  }
}
`,
        { mode: 0o600 },
      );
      const p = run(`spire-agent-${name}`, agentBin, ['run', '-config', aconf]);
      const healthy = (async () => {
        const until = Date.now() + timeoutMs;
        while (Date.now() < until) {
          if (p.exitCode !== null || p.signalCode !== null) return false;
          if ((await exec(agentBin, ['healthcheck', '-socketPath', socket])).ok) return true;
          await sleep(250);
        }
        return false;
      })();
      return { workloadAddress: `unix://${socket}`, process: p, healthy, stop: () => stop(p) };
    };
    return { trustDomain: o.trustDomain, server, startAgent, log: () => text, close };
  } catch (err) {
    await close();
    throw err;
  }
}
