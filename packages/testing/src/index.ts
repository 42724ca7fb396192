export { requirePeer, peerSkip, findPeer, type Peer } from './peers.js';
export { tempDir } from './tmp.js';
export { createNetnsHost, netnsSkip, type NetnsHost } from './netns.js';
export { startNatsServer, type NatsServer } from './nats.js';
export { startPostgres, type PostgresServer } from './postgres.js';
export { seededRandom } from './random.js';
export {
  startKubeApiserver,
  type KubeApiserver,
  type KubeApiserverOptions,
} from './kube-apiserver.js';
export { startSpire, type Spire, type SpireOptions } from './spire.js';
export { startVault, type VaultServer } from './vault.js';
