// `node --import` this after scripts/register-source.mjs: appends every URL the module loader
// resolves (built-ins included) to the file named by AUDIT_CLIENT_LOAD_LOG, one per line.
import { register } from 'node:module';
import { MessageChannel } from 'node:worker_threads';
import { appendFileSync } from 'node:fs';

const log = process.env.AUDIT_CLIENT_LOAD_LOG;
if (!log) throw new Error('AUDIT_CLIENT_LOAD_LOG is not set');
// The hooks run on the loader's thread; the URLs come back over a port and are written here,
// synchronously, so nothing is lost when the process exits.
const { port1, port2 } = new MessageChannel();
port1.on('message', (url) => appendFileSync(log, `${url}\n`));
port1.unref();
register(
  'data:text/javascript,' +
    encodeURIComponent(`
let port;
export function initialize(data) { port = data.port; }
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  port.postMessage(r.url);
  return r;
}`),
  { data: { port: port2 }, transferList: [port2] },
);
