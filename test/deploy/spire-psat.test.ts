// SPIRE node attestation by `k8s_psat` against a real kube-apiserver: the agent presents a
// projected ServiceAccount token bound to its pod (audience spire-server); the server validates
// it by TokenReview, reads the pod and then the pod's node, and names the agent after the node's
// UID. Controls: an agent whose ServiceAccount is not on the allow-list, and one whose pod was
// deleted (its bound token no longer reviews), are refused; the same server attests the good one.
//
// Against kube-dev this cannot work: kube-dev serves no Node objects (its TokenRequest refuses
// node binding for that reason) and k8s_psat reads the pod's node. kube-apiserver + etcd (the
// reference kube-dev is diffed against) serve Nodes, so the test runs there.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  peerSkip,
  requirePeer,
  startKubeApiserver,
  tempDir,
  type KubeApiserver,
} from '@precinct/testing';
import { X509Source } from '@precinct/spiffe/workloadapi';
import { startPsatSpire, type PsatSpire } from './support/spire-psat.js';

const skip = peerSkip('kubectl', 'kube-apiserver', 'etcd', 'spire-server', 'spire-agent');
const CLUSTER = 'kube-test';
const TD = 'psat.test';

describe('SPIRE k8s_psat node attestation against a real kube-apiserver', { skip }, () => {
  let api: KubeApiserver;
  let spire: PsatSpire;
  const dir = tempDir('precinct-psat-');

  async function kubectl(args: string[], input?: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const child = execFile(
        requirePeer('kubectl'),
        ['--kubeconfig', api.kubeconfigPath, ...args],
        { maxBuffer: 8 * 1024 * 1024 },
        (err, stdout, stderr) =>
          err ? reject(new Error(`kubectl ${args.join(' ')}: ${stderr}`)) : resolve(stdout),
      );
      if (input !== undefined) child.stdin!.end(input);
    });
  }

  /** Whether the SPIRE logs show `re` (their pipes may lag the exit of an agent by a moment). */
  async function logShows(re: RegExp): Promise<boolean> {
    for (let i = 0; i < 40 && !re.test(spire.log()); i++) await sleep(250);
    return re.test(spire.log());
  }

  /** A pod of `sa` on node-a, and a token bound to it for audience spire-server, in a file. */
  async function podToken(name: string, sa: string): Promise<string> {
    await kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: 'spire' },
        spec: {
          serviceAccountName: sa,
          nodeName: 'node-a',
          automountServiceAccountToken: false,
          containers: [{ name: 'agent', image: 'ghcr.io/spiffe/spire-agent:1.13.3' }],
        },
      }),
    );
    const token = (
      await kubectl([
        'create',
        'token',
        sa,
        '-n',
        'spire',
        '--audience',
        'spire-server',
        '--bound-object-kind',
        'Pod',
        '--bound-object-name',
        name,
        '--duration',
        '1h',
      ])
    ).trim();
    const file = join(dir.path, `${name}.token`);
    writeFileSync(file, token, { mode: 0o600 });
    return file;
  }

  before(async () => {
    api = await startKubeApiserver({ controllers: false });
    await kubectl(['create', 'namespace', 'spire']);
    for (const sa of ['spire-agent', 'intruder'])
      await kubectl(['create', 'serviceaccount', sa, '-n', 'spire']);
    await kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-a' } }),
    );
    spire = await startPsatSpire({
      trustDomain: TD,
      cluster: { name: CLUSTER, kubeconfigPath: api.kubeconfigPath, allow: ['spire:spire-agent'] },
    });
  });

  after(async () => {
    await spire?.close();
    await api?.close();
    dir.cleanup();
  });

  test('the agent attests with its pod-bound token; its ID names the node UID; a workload gets an SVID', async () => {
    const nodeUid = (
      await kubectl(['get', 'node', 'node-a', '-o', 'jsonpath={.metadata.uid}'])
    ).trim();
    assert.match(nodeUid, /^[0-9a-f-]{36}$/);
    const agent = spire.startAgent('good', await podToken('spire-agent-a', 'spire-agent'));
    try {
      assert.equal(await agent.healthy, true, spire.log().slice(-4000));
      const agentId = `spiffe://${TD}/spire/agent/k8s_psat/${CLUSTER}/${nodeUid}`;
      const shown = await spire.server(['agent', 'show', '-spiffeID', agentId]);
      for (const selector of [
        `k8s_psat:cluster:${CLUSTER}`,
        'k8s_psat:agent_ns:spire',
        'k8s_psat:agent_sa:spire-agent',
        'k8s_psat:agent_pod_name:spire-agent-a',
        'k8s_psat:agent_node_name:node-a',
      ])
        assert.ok(shown.includes(selector), `${selector} in\n${shown}`);
      const workload = `spiffe://${TD}/ns/apps/sa/client`;
      await spire.server([
        'entry',
        'create',
        '-parentID',
        agentId,
        '-spiffeID',
        workload,
        '-selector',
        `unix:uid:${process.getuid!()}`,
      ]);
      const source = await X509Source.create({ address: agent.workloadAddress, timeoutMs: 60_000 });
      try {
        assert.equal(source.getX509Svid().id.toString(), workload);
      } finally {
        await source.close();
      }
    } finally {
      await agent.stop();
    }
  });

  test('controls: a ServiceAccount off the allow-list and a deleted pod are refused', async () => {
    const intruder = spire.startAgent('intruder', await podToken('intruder-a', 'intruder'));
    try {
      assert.equal(await intruder.healthy, false, 'an agent of ServiceAccount intruder attests');
      assert.ok(
        await logShows(/spire:intruder\\?" is not an allowed service account/),
        spire.log().slice(-3000),
      );
    } finally {
      await intruder.stop();
    }
    const goneToken = await podToken('spire-agent-gone', 'spire-agent');
    await kubectl([
      'delete',
      'pod',
      'spire-agent-gone',
      '-n',
      'spire',
      '--grace-period=0',
      '--force',
    ]);
    const gone = spire.startAgent('gone', goneToken);
    try {
      assert.equal(await gone.healthy, false, "an agent with a deleted pod's token attests");
      // The pod-bound token died with its pod: TokenReview says so.
      assert.ok(await logShows(/service account token has been invalidated/));
    } finally {
      await gone.stop();
    }
    const agents = await spire.server(['agent', 'list']);
    assert.equal(
      (agents.match(/spire\/agent\/k8s_psat\//g) ?? []).length,
      1,
      `only the good agent attested:\n${agents}`,
    );
  });
});
