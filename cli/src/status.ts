import { existsSync, readdirSync, readFileSync, statSync, watch } from 'node:fs';
import { open } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { get as httpGet } from 'node:http';
import { get as httpsGet } from 'node:https';
import { parseDuration, parseFlags, UsageError, type Command } from '@precinct/runtime';
import { LOG_DIR, lockHolder, readState, type PartState } from './state.js';
import { recordsLeaseDetail } from './secrets-platform.js';

const DATA_DIR_FLAG = {
  type: 'string',
  description: 'the state folder of the precinct up to look at',
  default: '.precinct',
  placeholder: 'DIR',
} as const;

/** Resident memory of a process in bytes (Linux /proc), undefined elsewhere or when gone. */
export function rssBytes(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** GET the part's health URL (2 s); https with the CA the part names. 2xx = healthy. */
function probe(url: string, caFile: string | undefined): Promise<boolean> {
  return new Promise((resolveProbe) => {
    const u = new URL(url);
    const get = u.protocol === 'https:' ? httpsGet : httpGet;
    let ca: string | undefined;
    try {
      ca = caFile ? readFileSync(caFile, 'utf8') : undefined;
    } catch {
      resolveProbe(false);
      return;
    }
    const req = get(u, { timeout: 2000, ...(ca ? { ca } : {}) }, (res) => {
      res.resume();
      resolveProbe((res.statusCode ?? 500) < 300);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolveProbe(false));
  });
}

async function healthy(part: PartState, upPid: number): Promise<boolean> {
  if (!alive(part.pid ?? upPid)) return false;
  return part.healthUrl ? probe(part.healthUrl, part.caFile) : true;
}

const STATUS_SUMMARY =
  'Show what the precinct up on a state folder runs, where, and whether it is healthy.';

export const statusCommand: Command = {
  name: 'status',
  summary: STATUS_SUMMARY,
  async run(argv) {
    const flags = parseFlags('status', STATUS_SUMMARY, argv, {
      'data-dir': DATA_DIR_FLAG,
      json: { type: 'boolean', description: 'print [{name, url, healthy}] as JSON' },
    });
    if (!flags) return;
    const dataDir = String(flags['data-dir']);
    const state = readState(dataDir);
    const rows = await Promise.all(
      state.parts.map(async (p) => {
        const detail = await recordsLeaseDetail(p);
        return {
          name: p.name,
          url: p.url,
          healthy: await healthy(p, state.pid),
          ...(detail ? { detail } : {}),
        };
      }),
    );
    const pids = new Set([state.pid, ...state.parts.flatMap((p) => (p.pid ? [p.pid] : []))]);
    const rss = [...pids].reduce((sum, pid) => sum + (rssBytes(pid) ?? 0), 0);
    if (flags.json) {
      console.log(JSON.stringify(rows, null, 2));
    } else {
      const width = Math.max(4, ...rows.map((r) => r.name.length));
      console.log(
        `precinct up (pid ${state.pid}) on ${resolve(dataDir)}, since ${state.startedAt}`,
      );
      console.log('');
      for (const r of rows) {
        console.log(
          `  ${r.name.padEnd(width)}  ${r.healthy ? 'healthy  ' : 'UNHEALTHY'}  ${r.url}${r.detail ? `   ${r.detail}` : ''}`,
        );
      }
      if (rows.length === 0) console.log('  (still starting)');
      console.log('');
      console.log(
        `  memory: ${(rss / 1048576).toFixed(0)} MiB resident in ${pids.size} process(es)`,
      );
      const demoUsers = join(dataDir, 'demo-users.json');
      if (existsSync(demoUsers)) console.log(`  demo users and passwords: ${demoUsers}`);
    }
    if (rows.some((r) => !r.healthy)) process.exitCode = 1;
  },
};

const DOWN_SUMMARY = 'Stop the precinct up running on a state folder (from another terminal).';

export const downCommand: Command = {
  name: 'down',
  summary: DOWN_SUMMARY,
  async run(argv) {
    const flags = parseFlags('down', DOWN_SUMMARY, argv, {
      'data-dir': DATA_DIR_FLAG,
      timeout: {
        type: 'string',
        description: 'how long to wait for a clean stop before giving up',
        default: '30s',
        placeholder: 'DURATION',
        kind: 'duration',
      },
    });
    if (!flags) return;
    const dataDir = String(flags['data-dir']);
    const holder = lockHolder(dataDir);
    if (!holder) {
      console.log(`nothing is running on ${resolve(dataDir)}`);
      return;
    }
    process.kill(holder.pid, 'SIGTERM');
    const deadline = Date.now() + parseDuration(String(flags.timeout), '--timeout') * 1000;
    while (lockHolder(dataDir)?.pid === holder.pid) {
      if (Date.now() > deadline) {
        throw new Error(
          `precinct up (pid ${holder.pid}) did not stop within ${String(flags.timeout)}`,
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    console.log(`stopped precinct up (pid ${holder.pid}) on ${resolve(dataDir)}`);
  },
};

/** A pino JSON line as `time level [name] msg key=value ...`; other lines as they are. */
export function formatLogLine(line: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  if (typeof o !== 'object' || o === null) return line;
  const LEVELS: Record<number, string> = {
    10: 'trace',
    20: 'debug',
    30: 'info',
    40: 'warn',
    50: 'error',
    60: 'fatal',
  };
  const { time, level, name, msg, pid: _pid, hostname: _h, ...rest } = o;
  const t = typeof time === 'number' ? new Date(time).toISOString().slice(11, 23) : '';
  const extra = Object.entries(rest)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return [
    t,
    LEVELS[level as number] ?? String(level ?? ''),
    name ? `[${String(name)}]` : '',
    msg ?? '',
    extra,
  ]
    .filter((s) => s !== '')
    .join(' ');
}

const LOGS_SUMMARY = 'Print the logs of the precinct up on a state folder (one service, or all).';

export const logsCommand: Command = {
  name: 'logs',
  summary: LOGS_SUMMARY,
  async run(argv) {
    const positional = argv.filter(
      (a, i) => !a.startsWith('-') && !argv[i - 1]?.startsWith('--data-dir'),
    );
    const service = positional[0];
    const flags = parseFlags(
      'logs',
      LOGS_SUMMARY,
      argv.filter((a) => a !== service),
      {
        'data-dir': DATA_DIR_FLAG,
        follow: { type: 'boolean', description: 'keep printing new lines (like tail -f)' },
        raw: { type: 'boolean', description: 'print the JSON lines as written' },
      },
      'Usage: precinct logs [SERVICE] [flags]   (SERVICE: a file name in <data-dir>/logs, without .log)',
    );
    if (!flags) return;
    const dir = join(String(flags['data-dir']), LOG_DIR);
    const files = existsSync(dir)
      ? readdirSync(dir)
          .filter((f) => f.endsWith('.log'))
          .sort()
      : [];
    const names = files.map((f) => f.slice(0, -4));
    if (files.length === 0)
      throw new UsageError(`no logs in ${resolve(dir)}: has precinct up run there?`);
    if (service && !names.includes(service)) {
      throw new UsageError(
        `no log for "${service}" in ${resolve(dir)} (have: ${names.join(', ')})`,
      );
    }
    const chosen = service ? [service] : names;
    const fmt = (name: string, line: string) => {
      const text = flags.raw ? line : formatLogLine(line);
      return chosen.length > 1 ? `${name.padEnd(16)} | ${text}` : text;
    };
    const offsets = new Map<string, number>();
    const printNew = async (name: string) => {
      const path = join(dir, `${name}.log`);
      const from = offsets.get(name) ?? 0;
      const size = statSync(path).size;
      if (size <= from) return;
      const fh = await open(path, 'r');
      try {
        const buf = Buffer.alloc(size - from);
        await fh.read(buf, 0, buf.length, from);
        const text = buf.toString('utf8');
        const end = text.lastIndexOf('\n') + 1;
        offsets.set(name, from + Buffer.byteLength(text.slice(0, end)));
        for (const line of text.slice(0, end).split('\n')) if (line) console.log(fmt(name, line));
      } finally {
        await fh.close();
      }
    };
    for (const name of chosen) await printNew(name);
    if (!flags.follow) return;
    const watcher = watch(dir, (_event, file) => {
      const name =
        typeof file === 'string' && file.endsWith('.log') ? file.slice(0, -4) : undefined;
      if (name && chosen.includes(name)) void printNew(name);
    });
    await new Promise<void>((r) => {
      process.once('SIGINT', r);
      process.once('SIGTERM', r);
    });
    watcher.close();
  },
};
