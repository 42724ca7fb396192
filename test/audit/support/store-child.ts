// A store process the durability test can kill -9. Development auth (none): the test is
// about storage, and attribution is covered elsewhere.
import { startAuditStore } from '@precinct/audit-store';

const store = await startAuditStore({
  databaseUrl: process.env.DATABASE_URL,
  host: '127.0.0.1',
  port: Number(process.env.PORT ?? 0),
  auth: false,
  retentionIntervalMs: 0,
});
process.stdout.write(`READY ${store.port}\n`);
process.once('SIGTERM', () => {
  void store.close().then(() => process.exit(0));
});
