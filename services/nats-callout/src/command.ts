import { parseFlags, waitForShutdown, type Command } from '@precinct/runtime';
import { loadConfig } from './config.js';
import { startNatsCallout } from './service.js';

const SUMMARY = 'NATS auth callout: Kubernetes ServiceAccount tokens become NATS users';
const ENV_HELP = `Configured by environment variables (see docs/nats-callout.md):
  NATS_URL, NATS_USER_CREDS_FILE | NATS_TOKEN | user:pass in NATS_URL, NATS_SIGNING_KEY_FILE,
  NATS_ACCOUNT, NATS_XKEY_SEED_FILE, NATS_USER_JWT_MAX_TTL, NATS_QUEUE_GROUP, NATS_SHARED_INBOX,
  JWKS_URL | JWKS_PATH, JWKS_CA_FILE, JWT_ISSUER, JWT_AUDIENCE, K8S_IN_CLUSTER, KUBECONFIG, K8S_NAMESPACE,
  HOST, PORT, LOG_LEVEL`;

/** `precinct nats-callout`: runs the callout until SIGINT/SIGTERM. */
export const natsCalloutCommand: Command = {
  name: 'nats-callout',
  summary: SUMMARY,
  async run(argv) {
    const flags = parseFlags('nats-callout', SUMMARY, argv, {}, ENV_HELP);
    if (!flags) return;
    const config = loadConfig(process.env);
    const callout = await startNatsCallout(config);
    console.log(
      `nats-callout: health and metrics on port ${callout.port}; issuer ${callout.issuer}; account ${config.account}`,
    );
    await waitForShutdown();
    await callout.close();
  },
};
