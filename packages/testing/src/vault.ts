import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { requirePeer } from './peers.js';
import { tempDir } from './tmp.js';
import { stopProcess } from './process.js';

/** A real OpenBao/Vault server in `-dev` mode (in-memory storage, unsealed) started by a test. */
export interface VaultServer {
  /** `http://127.0.0.1:<port>`. */
  url: string;
  port: number;
  /** The root token (random per server). Tests use it to configure; workloads never see it. */
  rootToken: string;
  /**
   * Stops the server (idempotent); `SIGKILL` simulates a crash (no graceful shutdown). Dev mode
   * keeps nothing: a restart starts empty.
   */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts a stopped server again on the same port, with the same root token, empty. */
  start(): Promise<void>;
  /** Stops the server and removes its directory (idempotent). */
  close(): Promise<void>;
  /** The server's log so far (the root token is masked), for assertion messages. */
  log(): string;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen({ host: '127.0.0.1', port: 0 }, () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/**
 * Starts `vault server -dev` (found with findPeer('vault'): HashiCorp Vault, built by
 * scripts/peers/vault.sh) on 127.0.0.1 and a free port, with a random root token, HOME in a
 * temp dir and `-dev-no-store-token`, so nothing is written outside it. Resolves once
 * `/v1/sys/health` answers 200 (initialized, unsealed, active).
 */
export async function startVault(opts: { startTimeoutMs?: number } = {}): Promise<VaultServer> {
  const bin = requirePeer('vault');
  const tmp = tempDir('precinct-vault-');
  const port = await freePort();
  const rootToken = `root-${randomBytes(16).toString('hex')}`;
  const url = `http://127.0.0.1:${port}`;
  const timeout = opts.startTimeoutMs ?? 30_000;
  let child: ChildProcess | undefined;
  let logText = '';
  let removed = false;

  const start = async () => {
    const proc = spawn(
      bin,
      [
        'server',
        '-dev',
        `-dev-listen-address=127.0.0.1:${port}`,
        `-dev-root-token-id=${rootToken}`,
        '-dev-no-store-token',
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          PATH: process.env.PATH ?? '',
          HOME: tmp.path,
          VAULT_DISABLE_MLOCK: 'true',
          SKIP_SETCAP: '1',
        },
      },
    );
    child = proc;
    const onData = (b: Buffer) => {
      logText += b.toString().split(rootToken).join('<root-token>');
      if (logText.length > 1_000_000) logText = logText.slice(-500_000);
    };
    proc.stdout?.on('data', onData);
    proc.stderr?.on('data', onData);
    let exited = false;
    proc.once('exit', () => {
      exited = true;
    });
    const deadline = Date.now() + timeout;
    while (Date.now() < deadline && !exited) {
      try {
        const res = await fetch(`${url}/v1/sys/health`, { signal: AbortSignal.timeout(2_000) });
        await res.arrayBuffer();
        if (res.status === 200) return;
      } catch {
        /* not listening yet */
      }
      await sleep(50);
    }
    proc.kill('SIGKILL');
    throw new Error(`vault did not start: ${logText.slice(-2000)}`);
  };

  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    const proc = child;
    child = undefined;
    await stopProcess(proc, signal, 10_000);
  };

  await start();
  return {
    url,
    port,
    rootToken,
    stop,
    async start() {
      if (!child) await start();
    },
    async close() {
      await stop();
      if (!removed) {
        removed = true;
        tmp.cleanup();
      }
    },
    log: () => logText,
  };
}
