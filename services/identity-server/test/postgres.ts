// A throwaway PostgreSQL for tests: initdb into a temp dir, listen on a unix socket only (no
// port to collide on), stop and remove on close. As root it runs as the `postgres` user
// (initdb refuses root), spawned with that uid directly so signals reach postgres itself.
// Belongs in @precinct/testing once a second package needs it.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { requirePeer } from '@precinct/testing';

export interface TestPostgres {
  url: string;
  close(): Promise<void>;
}

export async function startPostgres(): Promise<TestPostgres> {
  const postgres = requirePeer('postgres');
  const initdb = join(dirname(postgres), 'initdb');
  const root = mkdtempSync(join(tmpdir(), 'precinct-pg-'));
  const data = join(root, 'data');
  let ids: { uid: number; gid: number } | undefined;
  if (process.getuid?.() === 0) {
    const id = (flag: string) =>
      Number(spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' }).stdout.trim());
    ids = { uid: id('-u'), gid: id('-g') };
    chownSync(root, ids.uid, ids.gid);
  }
  const initArgs = ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync'];
  const init = spawnSync(initdb, initArgs, { encoding: 'utf8', ...ids });
  if (init.status !== 0) {
    rmSync(root, { recursive: true, force: true });
    throw new Error(`initdb failed: ${init.stderr}`);
  }
  const args = ['-D', data, '-k', root, '-c', 'listen_addresses=', '-c', 'fsync=off'];
  const proc: ChildProcess = spawn(postgres, args, { stdio: ['ignore', 'ignore', 'pipe'], ...ids });
  await new Promise<void>((resolve, reject) => {
    let log = '';
    proc.stderr!.on('data', (c: Buffer) => {
      log += c.toString();
      if (log.includes('ready to accept connections')) resolve();
    });
    proc.on('exit', (code) => reject(new Error(`postgres exited ${code}: ${log}`)));
  });
  return {
    url: `postgresql://postgres@/postgres?host=${encodeURIComponent(root)}`,
    async close() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGINT'); // fast shutdown
        await exited;
      }
      rmSync(root, { recursive: true, force: true });
    },
  };
}
