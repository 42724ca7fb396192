// The audit store in its own process, as deployed (for the benchmark: PGlite runs on the
// event loop, and in one process it would stall the services being measured). SVID from the
// Workload API at SPIFFE_ENDPOINT_SOCKET; callers allowed by SPIFFE ID (ALLOW, comma-separated).
import { startAuditStore } from '@precinct/audit-store';
import { createLogger } from '@precinct/runtime';
import { authorizeOneOf } from '@precinct/spiffe';
import { X509Source } from '@precinct/spiffe/workloadapi';

const source = await X509Source.create({ timeoutMs: 20_000 });
const store = await startAuditStore({
  host: '127.0.0.1',
  port: 0,
  auth: false,
  spiffe: {
    svidSource: source,
    bundleSource: source,
    authorizer: authorizeOneOf(...(process.env.ALLOW ?? '').split(',')),
    healthHost: '127.0.0.1',
  },
  retentionIntervalMs: 0,
  logger: createLogger('audit-child', 'silent'),
});
process.stdout.write(`READY ${store.url}\n`);
process.once('SIGTERM', () => {
  void store
    .close()
    .then(() => source.close())
    .then(() => process.exit(0));
});
