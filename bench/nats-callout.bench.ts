// Authorized connections per second through the NATS auth callout, and the connect latency it
// adds, against the same nats-server with plain token auth, at the same concurrency, in one run.
//
//   npm run bench -- nats-callout
//
// The callout runs in a child process of its own (as it would in a pod), with the JWKS-file
// verifier and a static ServiceAccount list, so the figures measure the callout path (request
// decode, token verification, permissions, two Ed25519 signatures, NATS round trips) rather than
// the Kubernetes API.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect } from '@nats-io/transport-node';
import { peerSkip, startNatsServer, tempDir, type NatsServer } from '@precinct/testing';

const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const PHASE_MS = Number(process.env.BENCH_PHASE_MS ?? 8_000);
const WARMUP_MS = 1_000;

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

/** CONCURRENCY loops of connect + close for PHASE_MS; connect latency = until connect() resolves. */
async function measure(server: NatsServer, token: string, inboxPrefix?: string) {
  const latencies: number[] = [];
  let failures = 0;
  let measuring = false;
  const stopAt = Date.now() + WARMUP_MS + PHASE_MS;
  setTimeout(() => (measuring = true), WARMUP_MS).unref();
  let started = 0;
  let ended = 0;
  const loop = async () => {
    while (Date.now() < stopAt) {
      const t0 = performance.now();
      try {
        const nc = await connect({
          servers: server.url,
          token,
          ...(inboxPrefix ? { inboxPrefix } : {}),
          reconnect: false,
        });
        const ms = performance.now() - t0;
        if (measuring) {
          if (!started) started = performance.now();
          latencies.push(ms);
          ended = performance.now();
        }
        await nc.close();
      } catch {
        failures++;
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, loop));
  latencies.sort((a, b) => a - b);
  const seconds = (ended - started) / 1000;
  return {
    rate: latencies.length / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    n: latencies.length,
    failures,
  };
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
  const saToken = await tokens.mint('bench', 'worker', { uid: 'uid-bench-worker' });
  const seedFile = join(dir.path, 'account.seed');
  writeFileSync(seedFile, keys.accountSeed, { mode: 0o600 });

  // Reference: the same nats-server binary with a plain token.
  const plainToken = 'bench-plain-token';
  const plain = await startNatsServer(`authorization { token: "${plainToken}" }`);
  const ref = await measure(plain, plainToken);
  await plain.close();

  const server = await startNatsServer(serverConfig(keys));
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
    const ours = await measure(server, saToken, '_INBOX_bench_worker');

    const rows: Array<[string, string, string, string, string]> = [
      [
        `authorized connects/s (${CONCURRENCY} concurrent)`,
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
    console.log(
      `(one callout replica in its own process; reference Go service (portswigger-tim/nats-k8s-oidc-callout) not run)`,
    );
  } finally {
    proc.kill('SIGTERM');
    await Promise.race([new Promise((r) => proc.once('exit', r)), sleep(5_000)]);
    await server.close();
    dir.cleanup();
  }
}

if (process.argv.includes('--child')) await child();
else await main();
