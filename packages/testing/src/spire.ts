import { execFile } from 'node:child_process';
import { writeFileSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { requirePeer } from './peers.js';
import { processGroup } from './process.js';
import { tempDir } from './tmp.js';

/** A real SPIRE server and one agent started by a test (loopback, a fresh temp dir). */
export interface Spire {
  trustDomain: string;
  /** The agent's SPIFFE ID (join_token attestation): the parent of workload entries. */
  agentId: string;
  /** The agent's Workload API socket path, and the same as a `unix://` address. */
  workloadSocket: string;
  workloadAddress: string;
  /** The server's admin API socket. */
  serverSocket: string;
  /**
   * Registers a workload entry under the agent. Selectors in SPIRE syntax (`unix:uid:1000`).
   * Resolves with the entry id once the agent serves the SVID to this process's uid.
   */
  createEntry(entry: {
    spiffeId: string;
    selectors: string[];
    x509SvidTtlSeconds?: number;
    jwtSvidTtlSeconds?: number;
    hint?: string;
  }): Promise<string>;
  /** Runs `spire-server <args> -socketPath <server socket>`; resolves with stdout. */
  server(args: string[]): Promise<string>;
  /** The logs so far, for assertion messages. */
  log(): string;
  /** Stops both processes and removes the temp dir. Idempotent. */
  close(): Promise<void>;
}

export interface SpireOptions {
  /** Default `spire.test`. */
  trustDomain?: string;
  /** The server CA's lifetime (SPIRE duration syntax). Default `24h`. */
  caTtl?: string;
  /** Default X.509-SVID lifetime for entries that name none. Default `1h`. */
  defaultX509SvidTtl?: string;
  /** How long to wait for the server, the agent and each entry. Default 60 s. */
  timeoutMs?: number;
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

function exec(bin: string, args: string[]): Promise<{ ok: boolean; out: string }> {
  return new Promise((resolve) => {
    execFile(bin, args, { timeout: 30_000 }, (err, stdout, stderr) =>
      resolve({ ok: !err, out: `${stdout}${stderr}` }),
    );
  });
}

const hcl = (s: string) => JSON.stringify(s);

/**
 * Starts spire-server (SQLite datastore, disk key manager, join_token node attestation,
 * 127.0.0.1 on a free port) and spire-agent (join_token, in-memory keys, the unix workload
 * attestor, bootstrapped from the server's bundle, not insecurely). Resolves when both pass
 * their health checks.
 */
export async function startSpire(opts: SpireOptions = {}): Promise<Spire> {
  const serverBin = requirePeer('spire-server');
  const agentBin = requirePeer('spire-agent');
  const td = opts.trustDomain ?? 'spire.test';
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const tmp = tempDir('precinct-spire-');
  const dir = tmp.path;
  for (const d of ['server', 'agent'])
    mkdirSync(join(dir, d, 'data'), { recursive: true, mode: 0o700 });
  const group = processGroup(dir, 1_000_000);
  const start = group.start;
  let closed: Promise<void> | undefined;
  const close = () =>
    (closed ??= (async () => {
      await group.stop();
      tmp.cleanup();
    })());
  const exited = group.exited;
  const until = async (what: string, ok: () => Promise<boolean>) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (exited())
        throw new Error(`SPIRE exited while waiting for ${what}:\n${group.log().slice(-4000)}`);
      if (await ok()) return;
      if (Date.now() > deadline)
        throw new Error(`SPIRE: ${what} not ready in time:\n${group.log().slice(-4000)}`);
      await sleep(250);
    }
  };

  const serverSocket = join(dir, 'server', 'api.sock');
  const workloadSocket = join(dir, 'agent', 'api.sock');
  const server = async (args: string[]) => {
    const r = await exec(serverBin, [...args, '-socketPath', serverSocket]);
    if (!r.ok) throw new Error(`spire-server ${args.join(' ')}: ${r.out}`);
    return r.out;
  };

  try {
    const port = await freePort();
    const serverConf = join(dir, 'server.conf');
    writeFileSync(
      serverConf,
      `server {
  bind_address = "127.0.0.1"
  bind_port = "${port}"
  socket_path = ${hcl(serverSocket)}
  trust_domain = ${hcl(td)}
  data_dir = ${hcl(join(dir, 'server', 'data'))}
  log_level = "WARN"
  ca_key_type = "ec-p256"
  ca_ttl = ${hcl(opts.caTtl ?? '24h')}
  default_x509_svid_ttl = ${hcl(opts.defaultX509SvidTtl ?? '1h')}
  default_jwt_svid_ttl = "5m"
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
  NodeAttestor "join_token" {
    plugin_data {}
  }
}
`,
      { mode: 0o600 },
    );
    start('spire-server', serverBin, ['run', '-config', serverConf]);
    await until(
      'the server',
      async () => (await exec(serverBin, ['healthcheck', '-socketPath', serverSocket])).ok,
    );

    const bundlePath = join(dir, 'bundle.pem');
    writeFileSync(bundlePath, await server(['bundle', 'show', '-format', 'pem']), { mode: 0o600 });
    const tokenOut = await server(['token', 'generate', '-ttl', '600']);
    const token = /Token:\s*(\S+)/.exec(tokenOut)?.[1];
    if (!token) throw new Error(`spire-server token generate: unexpected output ${tokenOut}`);
    const agentId = `spiffe://${td}/spire/agent/join_token/${token}`;

    const agentConf = join(dir, 'agent.conf');
    writeFileSync(
      agentConf,
      `agent {
  data_dir = ${hcl(join(dir, 'agent', 'data'))}
  log_level = "WARN"
  server_address = "127.0.0.1"
  server_port = "${port}"
  socket_path = ${hcl(workloadSocket)}
  trust_bundle_path = ${hcl(bundlePath)}
  trust_domain = ${hcl(td)}
}
plugins {
  NodeAttestor "join_token" {
    plugin_data {}
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
    start('spire-agent', agentBin, ['run', '-config', agentConf, '-joinToken', token]);
    await until(
      'the agent',
      async () => (await exec(agentBin, ['healthcheck', '-socketPath', workloadSocket])).ok,
    );

    return {
      trustDomain: td,
      agentId,
      workloadSocket,
      workloadAddress: `unix://${workloadSocket}`,
      serverSocket,
      server,
      async createEntry(e) {
        const args = ['entry', 'create', '-parentID', agentId, '-spiffeID', e.spiffeId];
        for (const s of e.selectors) args.push('-selector', s);
        if (e.x509SvidTtlSeconds !== undefined)
          args.push('-x509SVIDTTL', String(e.x509SvidTtlSeconds));
        if (e.jwtSvidTtlSeconds !== undefined)
          args.push('-jwtSVIDTTL', String(e.jwtSvidTtlSeconds));
        if (e.hint !== undefined) args.push('-hint', e.hint);
        const out = await server(args);
        const id = /Entry ID\s*:\s*(\S+)/.exec(out)?.[1];
        if (!id) throw new Error(`spire-server entry create: unexpected output ${out}`);
        // The agent learns entries on its next sync (every 5 s): wait until it serves this one.
        await until(`an SVID for ${e.spiffeId}`, async () => {
          const r = await exec(agentBin, [
            'api',
            'fetch',
            'x509',
            '-socketPath',
            workloadSocket,
            '-timeout',
            '5s',
          ]);
          const quoted = e.spiffeId.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
          return r.ok && new RegExp(`SPIFFE ID:\\s+${quoted}\\s`).test(r.out);
        });
        return id;
      },
      log: group.log,
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
