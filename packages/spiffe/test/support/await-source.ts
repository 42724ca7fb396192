// A workload program for the lifetime tests: it awaits one source's create() and prints what
// it got. It runs as a child process because only a real process shows whether pending work
// holds the event loop (an in-process test always has the runner keeping it alive).
//
//   await-source.ts x509|jwt|bundles [hold|timeout]
//
// Prints READY <detail> once created, then closes the source and ends by itself; with
// `hold`, it keeps the source open until SIGTERM, then closes it and prints CLOSED; with
// `timeout`, create() gives up after 300 ms (the error goes to stderr, exit code 1).
// The Workload API address comes from SPIFFE_ENDPOINT_SOCKET; retries are logged to stderr.
import { BundleSource, JwtSource, X509Source } from '../../src/workloadapi.js';

const logger = {
  warn: (o: object, m: string) => process.stderr.write(`warn ${m} ${JSON.stringify(o)}\n`),
  debug: (o: object, m: string) => process.stderr.write(`debug ${m} ${JSON.stringify(o)}\n`),
};
const [kind, mode] = process.argv.slice(2);
const opts = {
  logger,
  backoff: { initialMs: 20, maxMs: 100 },
  timeoutMs: mode === 'timeout' ? 300 : 60_000,
};

async function main(): Promise<void> {
  let source: { close(): Promise<void> };
  if (kind === 'x509') {
    const s = await X509Source.create(opts);
    process.stdout.write(`READY ${String(s.getX509Svid().id)}\n`);
    source = s;
  } else if (kind === 'jwt') {
    const s = await JwtSource.create(opts);
    process.stdout.write(
      `READY ${String(s.getJwtBundleForTrustDomain('example.org').trustDomain)}\n`,
    );
    source = s;
  } else if (kind === 'bundles') {
    const s = await BundleSource.create(opts);
    const x = s.getX509BundleForTrustDomain('example.org');
    const j = s.getJwtBundleForTrustDomain('example.org');
    process.stdout.write(`READY ${String(x.trustDomain)} ${String(j.trustDomain)}\n`);
    source = s;
  } else {
    throw new Error(`unknown kind ${kind}`);
  }
  if (mode !== 'hold') return source.close();
  process.once('SIGTERM', () => {
    void source.close().then(() => process.stdout.write('CLOSED\n'));
  });
}

// The shape of most programs: a promise chain, no top-level await. A pending create() that
// held nothing would let this process end with code 0 and no output.
main().catch((err: unknown) => {
  process.stderr.write(`error: [${(err as { code?: string }).code}] ${String(err)}\n`);
  process.exitCode = 1;
});
