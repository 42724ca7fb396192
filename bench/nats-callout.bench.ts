// Authorized connections per second through the NATS auth callout, the connect latency it
// adds, and the CPU each authorization decision costs in the callout process, against the same
// nats-server with plain token auth and, when given, the Go reference callout
// (portswigger-tim/nats-k8s-oidc-callout), at the same concurrency, in one run.
//
//   npm run bench -- nats-callout
//   BENCH_GO_CALLOUT=/tmp/natsref/nats-k8s-oidc-callout npm run bench -- nats-callout
//   BENCH_ROUNDS=5 BENCH_PHASE_MS=3000 BENCH_TOKENS=fresh npm run bench -- nats-callout
//
// Each callout runs in a process of its own (as it would in a pod), with a JWKS file, so the
// figures measure the callout path (request decode and verify, token verification, permissions,
// two Ed25519 signatures, NATS round trips) rather than the Kubernetes API. Ours gets a static
// ServiceAccount list; the Go reference needs a Kubernetes API for its informer, so kube-dev
// runs in this process (idle during the phases).
//
// Token modes (BENCH_TOKENS, default both): `same`, every connect presents one token (a
// reconnect storm; our verifier cache skips the RS256 check, the reference has no cache);
// `fresh`, every connect presents a token never seen before (RS256 verified each time).
//
// The sides' phases alternate (plain, ours, Go, then the reverse order next round), so a change
// in the machine's load during the run lands on all alike. CPU per decision (Linux /proc) is
// what to compare across implementations: unlike connects/s it hardly moves with the load.
import { spawn, type ChildProcess } from 'node:child_process';
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
const WARMUP_SIDE_MS = Number(process.env.BENCH_WARMUP_MS ?? 3_000);
const TOKEN_MODES = (process.env.BENCH_TOKENS ?? 'same,fresh')
  .split(',')
  .map((s) => s.trim())
  .filter((m): m is 'same' | 'fresh' => m === 'same' || m === 'fresh');
/** Path of a built Go reference callout (see docs/nats-callout.md); that row is left out without it. */
const GO_CALLOUT = process.env.BENCH_GO_CALLOUT;
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
  /** The token for the next connect. */
  token: () => string;
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
          token: t.token(),
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

interface Side {
  label: string;
  result: Result;
}

function printTable(title: string, sides: Side[]): void {
  const ms = (n: number | undefined) => (n === undefined ? '-' : n.toFixed(3));
  const ref = sides.find((s) => s.label.startsWith('plain'))!.result;
  const ours = sides.find((s) => s.label.startsWith('ours'))!.result;
  const go = sides.find((s) => s.label.startsWith('Go'))?.result;
  const col = (f: (r: Result) => string) => sides.map((s) => f(s.result));
  const totalCpu = (r: Result) =>
    Object.values(r.cpuPerConnect).every((v) => v !== undefined)
      ? Object.values(r.cpuPerConnect).reduce<number>((a, v) => a + v!, 0)
      : undefined;
  const ratio = (a: number | undefined, b: number | undefined) =>
    a === undefined || b === undefined || b === 0 ? '-' : (a / b).toFixed(2);
  const rows: string[][] = [
    [
      'authorized connects/s',
      ...col((r) => r.rate.toFixed(0)),
      ratio(ours.rate, ref.rate),
      ratio(ours.rate, go?.rate),
    ],
    [
      'connect latency p50 (ms)',
      ...col((r) => r.p50.toFixed(2)),
      ratio(ours.p50, ref.p50),
      ratio(ours.p50, go?.p50),
    ],
    [
      'connect latency p99 (ms)',
      ...col((r) => r.p99.toFixed(2)),
      ratio(ours.p99, ref.p99),
      ratio(ours.p99, go?.p99),
    ],
    ['added latency p50 vs plain (ms)', ...col((r) => (r.p50 - ref.p50).toFixed(2)), '', ''],
    [
      'CPU per decision, callout process (ms)',
      ...col((r) => ms(r.cpuPerConnect.callout)),
      '',
      ratio(ours.cpuPerConnect.callout, go?.cpuPerConnect.callout),
    ],
    ['CPU per connect, nats-server (ms)', ...col((r) => ms(r.cpuPerConnect.server)), '', ''],
    ['CPU per connect, client (ms)', ...col((r) => ms(r.cpuPerConnect.client)), '', ''],
    [
      'CPU per connect, total (ms)',
      ...col((r) => ms(totalCpu(r))),
      '',
      ratio(totalCpu(ours), go ? totalCpu(go) : undefined),
    ],
    ['connects measured / failed', ...col((r) => `${r.n} / ${r.failures}`), '', ''],
  ];
  const head = ['metric', ...sides.map((s) => s.label), 'ours/plain', 'ours/Go'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  console.log(`\n${title}`);
  console.log(line(head));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of rows) console.log(line(r));
}

const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

/** Resolves once `proc` prints `marker` on stdout or stderr; rejects if it exits first. */
function waitForOutput(proc: ChildProcess, marker: RegExp, what: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let seen = '';
    const t = setTimeout(
      () => reject(new Error(`${what} did not start: ${seen.slice(-500)}`)),
      30_000,
    );
    const on = (b: Buffer) => {
      seen += b.toString();
      if (marker.test(seen)) {
        clearTimeout(t);
        resolve();
      }
    };
    proc.stdout?.on('data', on);
    proc.stderr?.on('data', on);
    proc.once('exit', (code) => reject(new Error(`${what} exited ${code}: ${seen.slice(-500)}`)));
  });
}

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
  const mint = () => tokens.mint('bench', 'worker', { uid: 'uid-bench-worker' });
  const saToken = await mint();
  const seedFile = join(dir.path, 'account.seed');
  writeFileSync(seedFile, keys.accountSeed, { mode: 0o600 });
  const xkeyFile = join(dir.path, 'xkey.seed');
  writeFileSync(xkeyFile, keys.xkeySeed, { mode: 0o600 });

  // Reference: the same nats-server binary, default settings like the callout's server, with
  // a plain token instead of the auth_callout block.
  const plainToken = 'bench-plain-token';
  const plain = await startNatsServer(`authorization { token: "${plainToken}" }`);
  const server = await startNatsServer(serverConfig(keys, { xkey: XKEY }));
  const calloutEnv = {
    NATS_URL: `nats://${CALLOUT_USER}:${keys.calloutPassword}@127.0.0.1:${server.port}`,
    NATS_SIGNING_KEY_FILE: seedFile,
    NATS_ACCOUNT: ACCOUNT,
    K8S_IN_CLUSTER: 'false',
    JWT_ISSUER: tokens.issuer,
    JWKS_PATH: tokens.jwksPath,
    LOG_LEVEL: 'warn',
  };
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
        ...calloutEnv,
        HOST: '127.0.0.1',
        PORT: '0',
        ...(XKEY ? { NATS_XKEY_SEED_FILE: xkeyFile } : {}),
      },
    },
  );
  let goProc: ChildProcess | undefined;
  let goServer: NatsServer | undefined;
  let kube: { close(): Promise<void> } | undefined;
  let goNote =
    'Go reference callout not run: set BENCH_GO_CALLOUT to its binary (docs/nats-callout.md)';
  try {
    await waitForOutput(proc, /^ready$/m, 'our callout');
    if (GO_CALLOUT && XKEY) goNote = 'Go reference callout not run: it has no xkey support';
    else if (GO_CALLOUT) {
      // Its informer wants a Kubernetes API with the ServiceAccount: kube-dev, in this process.
      const { startKubeDev } = await import('@precinct/kube-dev');
      const { CoreV1Api, KubeConfig } = await import('@kubernetes/client-node');
      const { createLogger } = await import('@precinct/runtime');
      const kd = await startKubeDev({
        listen: { host: '127.0.0.1', port: 0 },
        advertiseHost: '127.0.0.1',
        dataDir: join(dir.path, 'kube'),
        logger: createLogger('kube-dev', 'silent'),
      });
      kube = kd;
      const kc = new KubeConfig();
      kc.loadFromFile(kd.kubeconfigPath);
      const core = kc.makeApiClient(CoreV1Api);
      await core.createNamespace({ body: { metadata: { name: 'bench' } } });
      await core.createNamespacedServiceAccount({
        namespace: 'bench',
        body: { metadata: { name: 'worker' } },
      });
      // A nats-server of its own, configured like ours.
      goServer = await startNatsServer(serverConfig(keys));
      goProc = spawn(GO_CALLOUT, [], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          PATH: process.env.PATH,
          HOME: process.env.HOME,
          ...calloutEnv,
          NATS_URL: `nats://${CALLOUT_USER}:${keys.calloutPassword}@127.0.0.1:${goServer.port}`,
          KUBECONFIG: kd.kubeconfigPath,
          PORT: '0',
        },
      });
      await waitForOutput(goProc, /authorization service started/, 'Go callout');
      goNote = `Go reference callout: ${GO_CALLOUT}`;
    }

    // Fresh tokens, minted before the phases (RS256 signing here would slow the client).
    const perMode = new Map<string, () => string>();
    if (TOKEN_MODES.includes('fresh')) {
      const sides = goProc ? 2 : 1;
      const want = Number(
        process.env.BENCH_FRESH_TOKENS ??
          Math.ceil((sides * CONCURRENCIES.length * ROUNDS * (PHASE_MS + WARMUP_MS) * 700) / 1000),
      );
      const pool: string[] = [];
      const t0 = performance.now();
      for (let i = 0; i < want; i++) pool.push(await mint());
      console.log(
        `minted ${want} fresh tokens in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
      );
      let next = 0;
      let wrapped = false;
      perMode.set('fresh', () => {
        if (next >= pool.length) {
          next = 0;
          if (!wrapped) console.log('  (fresh token pool exhausted: tokens reused from here on)');
          wrapped = true;
        }
        return pool[next++]!;
      });
    }
    perMode.set('same', () => saToken);

    const plainTarget: Target = {
      server: plain,
      token: () => plainToken,
      pids: { server: natsServerPid(plain) },
    };
    // Untimed warm-up of each callout (JIT compilation runs on the process's own threads and
    // would otherwise be charged to whichever mode is measured first), with throw-away tokens.
    const warm = async (t: Omit<Target, 'pids'>) => {
      const until = performance.now() + WARMUP_SIDE_MS;
      const loop = async () => {
        while (performance.now() < until) {
          const nc = await connect({
            servers: t.server.url,
            token: t.token(),
            ...(t.inboxPrefix ? { inboxPrefix: t.inboxPrefix } : {}),
            reconnect: false,
          }).catch(() => undefined);
          await nc?.close();
        }
      };
      await Promise.all(Array.from({ length: 8 }, loop));
    };
    const warmTokens = await Promise.all(Array.from({ length: 50 }, mint));
    let w = 0;
    const warmToken = () => warmTokens[w++ % warmTokens.length]!;
    await warm({ server, token: warmToken, inboxPrefix: '_INBOX_bench_worker' });
    if (goServer) await warm({ server: goServer, token: warmToken });
    console.log(
      `load average before: ${load()}; ${ROUNDS} rounds x ${PHASE_MS} ms per side, mode and concurrency, after ${WARMUP_SIDE_MS} ms of warm-up per callout; xkey ${XKEY ? 'on' : 'off (BENCH_XKEY=1 encrypts)'}`,
    );
    for (const mode of TOKEN_MODES) {
      const token = perMode.get(mode)!;
      const targets: Array<[string, Target]> = [
        ['plain token', plainTarget],
        [
          'ours (callout)',
          {
            server,
            token,
            inboxPrefix: '_INBOX_bench_worker',
            pids: { server: natsServerPid(server), callout: proc.pid },
          },
        ],
      ];
      if (goProc && goServer) {
        targets.push([
          'Go reference',
          {
            server: goServer,
            token,
            inboxPrefix: '_INBOX_bench_worker',
            pids: { server: natsServerPid(goServer), callout: goProc.pid },
          },
        ]);
      }
      for (const concurrency of CONCURRENCIES) {
        const phases = new Map<string, Phase[]>(targets.map(([l]) => [l, []]));
        for (let round = 0; round < ROUNDS; round++) {
          // Neither side always runs first (the callout's JIT warms in round 0's warm-up).
          const order = round % 2 === 0 ? targets : [...targets].reverse();
          for (const [label, t] of order) phases.get(label)!.push(await measure(t, concurrency));
        }
        printTable(
          `${mode === 'same' ? 'same token on every connect' : 'a new token on every connect'}, ${concurrency} concurrent`,
          targets.map(([label]) => ({ label, result: combine(phases.get(label)!) })),
        );
      }
    }
    console.log(
      `\nload average after: ${load()} (a 1-minute load above the core count means other work shared the CPU)`,
    );
    console.log(`(one callout replica of each, in its own process; ${goNote})`);
  } finally {
    proc.kill('SIGTERM');
    goProc?.kill('SIGTERM');
    await Promise.race([new Promise((r) => proc.once('exit', r)), sleep(5_000)]);
    if (goProc) await Promise.race([new Promise((r) => goProc!.once('exit', r)), sleep(5_000)]);
    await server.close();
    await goServer?.close();
    await plain.close();
    await kube?.close();
    dir.cleanup();
  }
}

if (process.argv.includes('--child')) await child();
else await main();
