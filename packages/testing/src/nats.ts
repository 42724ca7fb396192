import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { requirePeer } from './peers.js';
import { tempDir } from './tmp.js';
import { stopProcess } from './process.js';

/** A real nats-server started by a test. */
export interface NatsServer {
  /** `nats://127.0.0.1:<port>`. */
  url: string;
  port: number;
  /** The temp directory holding the config file and the server log. */
  dir: string;
  /** Stops the server and starts it again on the same port with the same config. */
  restart(): Promise<void>;
  /** Stops the server (idempotent), keeping the directory. */
  stop(): Promise<void>;
  /** Stops the server and removes its directory (idempotent). */
  close(): Promise<void>;
  /** The server's log so far, for assertion messages. */
  log(): string;
}

/**
 * Starts `nats-server` (>= 2.10, found with findPeer) on 127.0.0.1 and a free port, with `config`
 * written to a file in a fresh temp directory. The first start lets the server pick its port
 * (`-p -1`) and reads it from the server's ports file, so there is no race for a port; restarts
 * reuse that port so reconnecting clients find the server again.
 */
export async function startNatsServer(config = '', opts: { startTimeoutMs?: number } = {}) {
  const bin = requirePeer('nats-server');
  const tmp = tempDir('precinct-nats-');
  const portsDir = join(tmp.path, 'ports');
  const confPath = join(tmp.path, 'nats.conf');
  writeFileSync(confPath, `${config}\nports_file_dir: ${JSON.stringify(portsDir)}\n`, {
    mode: 0o600,
  });
  const timeout = opts.startTimeoutMs ?? 15_000;
  let child: ChildProcess | undefined;
  let port = -1;
  let logText = '';
  let removed = false;

  const startOnce = async (): Promise<number> => {
    rmSync(portsDir, { recursive: true, force: true });
    mkdirSync(portsDir, { recursive: true });
    const proc = spawn(bin, ['-c', confPath, '-a', '127.0.0.1', '-p', String(port)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    const onData = (b: Buffer) => {
      logText += b.toString();
      if (logText.length > 1_000_000) logText = logText.slice(-500_000);
    };
    proc.stdout?.on('data', onData);
    proc.stderr?.on('data', onData);
    let exited = false;
    proc.once('exit', () => {
      exited = true;
    });
    const deadline = Date.now() + timeout;
    while (Date.now() < deadline) {
      if (exited) break;
      const file = readdirSync(portsDir).find((f) => f.endsWith('.ports'));
      if (file) {
        try {
          const info = JSON.parse(readFileSync(join(portsDir, file), 'utf8')) as {
            nats?: string[];
          };
          const u = info.nats?.[0];
          if (u) return Number(new URL(u).port);
        } catch {
          /* being written; read again */
        }
      }
      await sleep(20);
    }
    proc.kill('SIGKILL');
    throw new Error(`nats-server did not start: ${logText.slice(-2000)}`);
  };

  const stop = async () => {
    const proc = child;
    child = undefined;
    await stopProcess(proc, 'SIGTERM', 5_000);
  };

  port = await startOnce();
  const server: NatsServer = {
    url: `nats://127.0.0.1:${port}`,
    port,
    dir: tmp.path,
    async restart() {
      await stop();
      await startOnce();
    },
    stop,
    async close() {
      await stop();
      if (!removed) {
        removed = true;
        tmp.cleanup();
      }
    },
    log: () => logText,
  };
  return server;
}
