// Time from a registration entry's creation to its X.509-SVID arriving on a connected
// FetchX509SVID stream, through the admin store, the entry event, signing and gRPC over a unix
// socket. Reference: a bare @grpc/grpc-js server-stream write on a unix socket, same run.
//
//   npm run bench -- identity-stream
import * as grpc from '@grpc/grpc-js';
import { createLogger } from '@precinct/runtime';
import { startIdentityServer } from '@precinct/identity-server';
import {
  WORKLOAD_API_SECURITY_HEADER as SECURITY_HEADER,
  workloadApiServiceDefinition,
} from '@precinct/spiffe/workloadapi';

const N = Number(process.env.BENCH_N ?? 300);

type Svids = { svids: { spiffe_id: string }[] };

const server = await startIdentityServer({
  trustDomain: 'bench.example',
  admin: { host: '127.0.0.1', port: 0 },
  oidc: { host: '127.0.0.1', port: 0 },
  health: { host: '127.0.0.1', port: 0 },
  logger: createLogger('bench', 'silent'),
  verifier: {
    verify: async () => ({
      namespace: 'bench',
      serviceAccountName: 'api',
      expiresAt: new Date(Date.now() + 3600_000),
    }),
  },
});
await server.entries.create({
  spiffeId: 'spiffe://bench.example/base',
  selectors: ['k8s:ns:bench'],
});
const attested = (await (
  await fetch(`${server.adminUrl}/v1/attest`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token: 'x' }),
  })
).json()) as { address: string };

const Ctor = grpc.makeGenericClientConstructor(workloadApiServiceDefinition(), 'SpiffeWorkloadAPI');
const client = new Ctor(attested.address, grpc.credentials.createInsecure()) as unknown as {
  FetchX509SVID(req: object, md: grpc.Metadata): grpc.ClientReadableStream<Svids>;
  close(): void;
};
const md = new grpc.Metadata();
md.set(SECURITY_HEADER, 'true');
const stream = client.FetchX509SVID({}, md);
let waiter: ((m: Svids) => void) | undefined;
stream.on('data', (m: Svids) => waiter?.(m));
stream.on('error', () => undefined);
const nextMatching = (pred: (m: Svids) => boolean) =>
  new Promise<void>((resolve) => {
    waiter = (m) => {
      if (pred(m)) resolve();
    };
  });
await nextMatching(() => true);

const ours: number[] = [];
for (let i = 0; i < N; i++) {
  const id = `spiffe://bench.example/w/${i}`;
  const arrived = nextMatching((m) => m.svids.some((s) => s.spiffe_id === id));
  const t0 = performance.now();
  const e = await server.entries.create({
    spiffeId: id,
    selectors: ['k8s:ns:bench', 'k8s:sa:api'],
  });
  await arrived;
  ours.push(performance.now() - t0);
  const gone = nextMatching((m) => !m.svids.some((s) => s.spiffe_id === id));
  await server.entries.delete(e.id);
  await gone;
}
stream.cancel();
client.close();
await server.close();

// Reference: the same transport with nothing behind it.
const ref = new grpc.Server();
let push: ((m: Svids) => void) | undefined;
ref.addService(workloadApiServiceDefinition(), {
  FetchX509SVID(call: grpc.ServerWritableStream<unknown, Svids>) {
    push = (m) => call.write(m);
    call.on('cancelled', () => (push = undefined));
  },
});
const sock = `/tmp/precinct-bench-${process.pid}.sock`;
await new Promise<void>((r, j) =>
  ref.bindAsync(`unix://${sock}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? j(e) : r())),
);
const rc = new Ctor(
  `unix://${sock}`,
  grpc.credentials.createInsecure(),
) as unknown as typeof client;
const rs = rc.FetchX509SVID({}, md);
let rw: (() => void) | undefined;
rs.on('data', () => rw?.());
rs.on('error', () => undefined);
while (!push) await new Promise((r) => setTimeout(r, 5));
const reference: number[] = [];
for (let i = 0; i < N; i++) {
  const got = new Promise<void>((r) => (rw = r));
  const t0 = performance.now();
  push({ svids: [{ spiffe_id: `spiffe://bench.example/w/${i}` }] });
  await got;
  reference.push(performance.now() - t0);
}
rs.cancel();
rc.close();
ref.forceShutdown();

const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const fmt = (n: number) => `${n.toFixed(2)} ms`;
const rows = [
  ['metric', 'ours', 'reference', 'ratio', 'target'],
  [
    'entry created -> SVID on stream, p50',
    fmt(pct(ours, 50)),
    fmt(pct(reference, 50)),
    `${(pct(ours, 50) / pct(reference, 50)).toFixed(1)}x`,
    '-',
  ],
  [
    'entry created -> SVID on stream, p99',
    fmt(pct(ours, 99)),
    fmt(pct(reference, 99)),
    `${(pct(ours, 99) / pct(reference, 99)).toFixed(1)}x`,
    '< 100 ms',
  ],
];
const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join(' | '));
const ok = pct(ours, 99) < 100;
console.log(ok ? '\nall targets met' : '\nTARGET MISSED');
process.exitCode = ok ? 0 : 1;
