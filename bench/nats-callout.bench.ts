// Authorized connections per second through the NATS auth callout, and the connect latency it
// adds, against the same nats-server with plain token auth, at the same concurrency, in one run.
//
//   npm run bench -- nats-callout
//   BENCH_ROUNDS=5 BENCH_PHASE_MS=3000 npm run bench -- nats-callout
//
// The callout runs in a child process of its own (as it would in a pod), with the JWKS-file
// verifier and a static ServiceAccount list, so the figures measure the callout path (request
// decode, token verification, permissions, two Ed25519 signatures, NATS round trips) rather than
// the Kubernetes API.
//
// Both servers run for the whole benchmark and their phases alternate (reference, callout,
// callout, reference, ...), so a change in the machine's load during the run (other benchmarks)
// lands on both sides alike. Each concurrency is measured separately: 32 concurrent connects
// on a small machine are mostly queueing for the CPU; at 4 the added latency is the callout's
// own. CPU per connect (Linux /proc) is printed per process: unlike connects/s it hardly moves
// with the machine's load.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect } from '@nats-io/transport-node';
import { peerSkip, startNatsServer, tempDir, type NatsServer } from '@precinct/testing';

const CONCURRENCIES = (process.env.BENCH_CONCURRENCY ?? '32,4')
  .split(',')
  .map((s) => Number(s.trim()))
  .filter((n) => Number.isInteger(n) && n > 0);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const PHASE_MS = Number(process.env.BENCH_PHASE_MS ?? 2_500);
const WARMUP_MS = 500;
/** BENCH_XKEY=1: the server encrypts requests to the callout's xkey (auth_callout.xkey). */
const XKEY = process.env.BENCH_XKEY === '1' || process.env.BENCH_XKEY === 'true';

async function child(): Promise<void> {
  const { loadConfig, startNatsCallout, staticServiceAccounts } =
    await import('@precinct/nats-callout');
  const config = loadConfig(process.env);
  // The production verifier (@precinct/kube over JWKS_PATH, with its cache); a static
  // ServiceAccount list instead of the informer.
  const callout = await startNatsCallout(config, {
    serviceAccounts: staticServiceAccounts([
      { namespace: 'bench', name: 'worker', uid: 'uid-bench-worker', annotations: {} },
    ]),
  });
  const timer = setInterval(() => {
    if (callout.status().ready) {
      clearInterval(timer);
      process.stdout.write('ready\n');
    }
  }, 20);
  process.once('SIGTERM', () => {
    if (process.env.BENCH_DEBUG) {
      const cpu = process.cpuUsage();
      void callout.metrics.decisionSeconds.get().then((h) => {
        const sum = h.values.find((v) => v.metricName?.endsWith('_sum'))?.value ?? 0;
        const count = h.values.find((v) => v.metricName?.endsWith('_count'))?.value ?? 0;
        process.stderr.write(
          `callout cpu user ${(cpu.user / 1e3).toFixed(0)} ms sys ${(cpu.system / 1e3).toFixed(0)} ms; decisions ${count}, mean ${((sum / count) * 1e3).toFixed(3)} ms\n`,
        );
      });
    }
    void callout.close().then(() => process.exit(0));
  });
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** CPU time (user + system, ms) of a process from /proc; undefined where there is no /proc. */
function cpuMs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start at field 3.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime + stime, USER_HZ = 100
  } catch {
    return undefined;
  }
}

/** The pid of the nats-server started with `server.dir`'s config (Linux only). */
function natsServerPid(server: NatsServer): number | undefined {
  try {
    for (const p of readdirSync('/proc')) {
      if (!/^\d+$/.test(p)) continue;
      try {
        const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
        if (cmd.includes('nats-server') && cmd.includes(server.dir)) return Number(p);
      } catch {
        /* gone */
      }
    }
  } catch {
    /* no /proc */
  }
  return undefined;
}

interface Target {
  server: NatsServer;
  token: string;
  inboxPrefix?: string;
  /** Processes whose CPU is charged to this side, besides the client (this process). */
  pids: Record<string, number | undefined>;
}

interface Phase {
  latencies: number[];
  seconds: number;
  failures: number;
  cpu: Record<string, number | undefined>;
}

/**
 * `concurrency` loops of connect + close for WARMUP_MS + PHASE_MS. Connect latency = until
 * connect() resolves (the server answers PONG after authorizing); counted when it ends inside
 * the measured window, whose length is the rate's denominator.
 */
async function measure(t: Target, concurrency: number): Promise<Phase> {
  const latencies: number[] = [];
  let failures = 0;
  const t0 = performance.now();
  const from = t0 + WARMUP_MS;
  const until = from + PHASE_MS;
  let cpu0: Record<string, number | undefined> = {};
  const startCpu = setTimeout(() => {
    cpu0 = sampleCpu(t);
  }, WARMUP_MS);
  const loop = async () => {
    while (performance.now() < until) {
      const s = performance.now();
      try {
        const nc = await connect({
          servers: t.server.url,
          token: t.token,
          ...(t.inboxPrefix ? { inboxPrefix: t.inboxPrefix } : {}),
          reconnect: false,
        });
        const e = performance.now();
        if (e >= from && e <= until) latencies.push(e - s);
        await nc.close();
      } catch {
        failures++;
      }
    }
  };
  const done = Promise.all(Array.from({ length: concurrency }, loop));
  await sleep(WARMUP_MS + PHASE_MS);
  const cpu1 = sampleCpu(t);
  await done;
  clearTimeout(startCpu);
  const cpu: Record<string, number | undefined> = {};
  for (const k of Object.keys(cpu1)) {
    const a = cpu0[k];
    const b = cpu1[k];
    cpu[k] = a === undefined || b === undefined ? undefined : b - a;
  }
  return { latencies, seconds: PHASE_MS / 1000, failures, cpu };
}

function sampleCpu(t: Target): Record<string, number | undefined> {
  const self = process.cpuUsage();
  const out: Record<string, number | undefined> = { client: (self.user + self.system) / 1000 };
  for (const [k, pid] of Object.entries(t.pids)) out[k] = cpuMs(pid);
  return out;
}

interface Result {
  rate: number;
  p50: number;
  p99: number;
  n: number;
  failures: number;
  /** CPU ms per measured connect, by process. */
  cpuPerConnect: Record<string, number | undefined>;
}

function combine(phases: Phase[]): Result {
  const latencies = phases.flatMap((p) => p.latencies).sort((a, b) => a - b);
  const seconds = phases.reduce((s, p) => s + p.seconds, 0);
  const n = latencies.length;
  const cpuPerConnect: Record<string, number | undefined> = {};
  for (const k of Object.keys(phases[0]?.cpu ?? {})) {
    let sum = 0;
    let known = true;
    for (const p of phases) {
      const v = p.cpu[k];
      if (v === undefined) known = false;
      else sum += v;
    }
    cpuPerConnect[k] = known && n > 0 ? sum / n : undefined;
  }
  return {
    rate: n / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    n,
    failures: phases.reduce((s, p) => s + p.failures, 0),
    cpuPerConnect,
  };
}

function printTable(concurrency: number, ours: Result, ref: Result): void {
  const ms = (n: number | undefined) => (n === undefined ? '-' : n.toFixed(3));
  const cpuRow = (label: string, key: string): [string, string, string, string, string] => [
    `CPU per connect, ${label} (ms)`,
    ms(ours.cpuPerConnect[key]),
    ms(ref.cpuPerConnect[key]),
    '',
    '',
  ];
  const totalCpu = (r: Result) =>
    Object.values(r.cpuPerConnect).every((v) => v !== undefined)
      ? Object.values(r.cpuPerConnect).reduce<number>((s, v) => s + v!, 0)
      : undefined;
  const rows: Array<[string, string, string, string, string]> = [
    [
      `authorized connects/s (${concurrency} concurrent)`,
      ours.rate.toFixed(0),
      ref.rate.toFixed(0),
      (ours.rate / ref.rate).toFixed(2),
      '>= 0.70',
    ],
    [
      'connect latency p50 (ms)',
      ours.p50.toFixed(2),
      ref.p50.toFixed(2),
      (ours.p50 / ref.p50).toFixed(2),
      '',
    ],
    [
      'connect latency p99 (ms)',
      ours.p99.toFixed(2),
      ref.p99.toFixed(2),
      (ours.p99 / ref.p99).toFixed(2),
      '',
    ],
    ['added connect latency p50 (ms)', (ours.p50 - ref.p50).toFixed(2), '0', '', ''],
    ['added connect latency p99 (ms)', (ours.p99 - ref.p99).toFixed(2), '0', '', '< 5'],
    cpuRow('client', 'client'),
    cpuRow('nats-server', 'server'),
    cpuRow('callout', 'callout'),
    ['CPU per connect, total (ms)', ms(totalCpu(ours)), ms(totalCpu(ref)), '', ''],
    [
      'connects measured / failed',
      `${ours.n} / ${ours.failures}`,
      `${ref.n} / ${ref.failures}`,
      '',
      '',
    ],
  ];
  const head: [string, string, string, string, string] = [
    'metric',
    'ours (callout)',
    'reference (token)',
    'ratio',
    'target',
  ];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  console.log(line(head));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of rows) console.log(line(r));
}

const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

async function main(): Promise<void> {
  const skip = peerSkip('nats-server');
  if (skip) {
    console.log(skip);
    return;
  }
  const { newKeys, newTokenIssuer, serverConfig, ACCOUNT, CALLOUT_USER } =
    await import('../test/nats/harness.js');
  const dir = tempDir('nats-callout-bench-');
  const keys = newKeys();
  const tokens = await newTokenIssuer(dir.path, 'https://kubernetes.bench');
  const saToken = await tokens.mint('bench', 'worker', { uid: 'uid-bench-worker' });
  const seedFile = join(dir.path, 'account.seed');
  writeFileSync(seedFile, keys.accountSeed, { mode: 0o600 });
  const xkeyFile = join(dir.path, 'xkey.seed');
  writeFileSync(xkeyFile, keys.xkeySeed, { mode: 0o600 });

  // Reference: the same nats-server binary, default settings like the callout's server, with
  // a plain token instead of the auth_callout block.
  const plainToken = 'bench-plain-token';
  const plain = await startNatsServer(`authorization { token: "${plainToken}" }`);
  const server = await startNatsServer(serverConfig(keys, { xkey: XKEY }));
  const proc = spawn(
    process.execPath,
    [
      ...(process.env.BENCH_CHILD_PROF
        ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CHILD_PROF}`]
        : []),
      '--import',
      './scripts/register-source.mjs',
      'bench/nats-callout.bench.ts',
      '--child',
    ],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: {
        ...process.env,
        HOST: '127.0.0.1',
        PORT: '0',
        NATS_URL: `nats://${CALLOUT_USER}:${keys.calloutPassword}@127.0.0.1:${server.port}`,
        NATS_SIGNING_KEY_FILE: seedFile,
        ...(XKEY ? { NATS_XKEY_SEED_FILE: xkeyFile } : {}),
        NATS_ACCOUNT: ACCOUNT,
        K8S_IN_CLUSTER: 'false',
        JWT_ISSUER: tokens.issuer,
        JWKS_PATH: tokens.jwksPath,
        LOG_LEVEL: 'warn',
      },
    },
  );
  try {
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('callout did not become ready')), 20_000);
      proc.stdout!.on('data', (b: Buffer) => {
        if (b.toString().includes('ready')) {
          clearTimeout(t);
          resolve();
        }
      });
      proc.once('exit', (code) => reject(new Error(`callout exited ${code}`)));
    });
    const reference: Target = {
      server: plain,
      token: plainToken,
      pids: { server: natsServerPid(plain) },
    };
    const callout: Target = {
      server,
      token: saToken,
      inboxPrefix: '_INBOX_bench_worker',
      pids: { server: natsServerPid(server), callout: proc.pid },
    };
    console.log(
      `load average before: ${load()}; ${ROUNDS} rounds x ${PHASE_MS} ms per side and concurrency; xkey ${XKEY ? 'on' : 'off (BENCH_XKEY=1 encrypts)'}`,
    );
    for (const concurrency of CONCURRENCIES) {
      const ours: Phase[] = [];
      const ref: Phase[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        // ABBA: neither side always runs first (the callout's JIT warms in round 0's warm-up).
        if (round % 2 === 0) {
          ref.push(await measure(reference, concurrency));
          ours.push(await measure(callout, concurrency));
        } else {
          ours.push(await measure(callout, concurrency));
          ref.push(await measure(reference, concurrency));
        }
      }
      console.log('');
      printTable(concurrency, combine(ours), combine(ref));
    }
    console.log(
      `\nload average after: ${load()} (a 1-minute load above the core count means other work shared the CPU)`,
    );
    console.log(
      `(one callout replica in its own process; reference Go service (portswigger-tim/nats-k8s-oidc-callout) not run)`,
    );
  } finally {
    proc.kill('SIGTERM');
    await Promise.race([new Promise((r) => proc.once('exit', r)), sleep(5_000)]);
    await server.close();
    await plain.close();
    dir.cleanup();
  }
}

if (process.argv.includes('--child')) await child();
else await main();
