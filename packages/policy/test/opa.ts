// A real `opa run --server` on a loopback port, for the differential test and the bench.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { requirePeer } from '@precinct/testing';
import { policyFiles } from '@precinct/policy';

export interface OpaServer {
  url: string;
  log(): string;
  /** Stops the server (idempotent). */
  close(): Promise<void>;
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', resolve);
  });
  const { port } = srv.address() as { port: number };
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/**
 * Starts OPA with the package's Rego and demo data (or `files`). OPA cannot report a port it
 * picked itself, so a free port is probed first; if another process takes it in between, OPA
 * exits and the start is retried on a new port.
 */
export async function startOpaServer(
  files: string[] = [policyFiles.regoDir, policyFiles.demoData],
): Promise<OpaServer> {
  const bin = requirePeer('opa');
  let lastLog = '';
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    let logText = '';
    const proc: ChildProcess = spawn(
      bin,
      [
        'run',
        '--server',
        '--addr',
        `127.0.0.1:${port}`,
        '--skip-version-check',
        '--log-level',
        'error',
        '--shutdown-grace-period',
        '1',
        ...files,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const onData = (b: Buffer) => {
      logText = (logText + b.toString()).slice(-100_000);
    };
    proc.stdout?.on('data', onData);
    proc.stderr?.on('data', onData);
    let exited = false;
    proc.once('exit', () => (exited = true));
    const close = async () => {
      if (exited) return;
      const done = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await done;
      clearTimeout(t);
    };
    const deadline = Date.now() + 20_000;
    while (!exited && Date.now() < deadline) {
      try {
        const res = await fetch(`${url}/health`);
        await res.arrayBuffer();
        if (res.ok) return { url, log: () => logText, close };
      } catch {
        /* not listening yet */
      }
      await sleep(25);
    }
    await close();
    lastLog = logText;
    if (!/address already in use/i.test(logText)) break;
  }
  throw new Error(`opa did not start: ${lastLog.slice(-2000)}`);
}
