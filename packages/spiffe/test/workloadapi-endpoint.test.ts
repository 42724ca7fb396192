import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseWorkloadEndpoint, resolveWorkloadEndpoint } from '../src/workloadapi/endpoint.js';
import { Backoff } from '../src/workloadapi/backoff.js';

test('endpoint: accepted addresses map to gRPC targets', () => {
  const ok: [string, string][] = [
    ['unix:///run/spire/agent.sock', 'unix:///run/spire/agent.sock'],
    ['unix:/run/spire/agent.sock', 'unix:///run/spire/agent.sock'],
    ['tcp://127.0.0.1:8081', 'ipv4:127.0.0.1:8081'],
    ['tcp://[::1]:8081', 'ipv6:[::1]:8081'],
  ];
  for (const [input, target] of ok) {
    assert.equal(parseWorkloadEndpoint(input).grpcTarget, target, input);
  }
});

test('endpoint: malformed addresses are refused with stable codes', () => {
  const bad: [string, string][] = [
    ['', 'ERR_WORKLOADAPI_ENDPOINT_MISSING'],
    ['unix://host/run/agent.sock', 'ERR_WORKLOADAPI_ENDPOINT_INVALID'], // authority
    ['unix://user@/run/agent.sock', 'ERR_WORKLOADAPI_ENDPOINT_INVALID'],
    ['unix:relative/agent.sock', 'ERR_WORKLOADAPI_ENDPOINT_INVALID'],
    ['unix://', 'ERR_WORKLOADAPI_ENDPOINT_INVALID'],
    ['unix:///run/agent.sock?x=1', 'ERR_WORKLOADAPI_ENDPOINT_INVALID'],
    ['unix:///run/agent.sock#f', 'ERR_WORKLOADAPI_ENDPOINT_INVALID'],
    ['tcp://127.0.0.1:8081/path', 'ERR_WORKLOADAPI_ENDPOINT_INVALID'],
    ['tcp://127.0.0.1:8081/', 'ERR_WORKLOADAPI_ENDPOINT_INVALID'],
    ['tcp://127.0.0.1:8081?q=1', 'ERR_WORKLOADAPI_ENDPOINT_INVALID'],
    ['tcp://127.0.0.1:8081#f', 'ERR_WORKLOADAPI_ENDPOINT_INVALID'],
    ['tcp://user:pw@127.0.0.1:8081', 'ERR_WORKLOADAPI_ENDPOINT_INVALID'],
    ['tcp://localhost:8081', 'ERR_WORKLOADAPI_ENDPOINT_INVALID'],
    ['tcp://127.0.0.1', 'ERR_WORKLOADAPI_ENDPOINT_INVALID'],
    ['tcp://127.0.0.1:0', 'ERR_WORKLOADAPI_ENDPOINT_INVALID'],
    ['http://127.0.0.1:8081', 'ERR_WORKLOADAPI_ENDPOINT_INVALID'],
    ['/run/agent.sock', 'ERR_WORKLOADAPI_ENDPOINT_INVALID'],
    ['not a uri', 'ERR_WORKLOADAPI_ENDPOINT_INVALID'],
  ];
  for (const [input, code] of bad) {
    assert.throws(() => parseWorkloadEndpoint(input), { code }, input);
  }
});

test('endpoint: SPIFFE_ENDPOINT_SOCKET is the fallback, an argument wins', () => {
  const env = { SPIFFE_ENDPOINT_SOCKET: 'unix:///env.sock' };
  assert.equal(resolveWorkloadEndpoint(undefined, env).address, 'unix:///env.sock');
  assert.equal(resolveWorkloadEndpoint('tcp://127.0.0.1:1', env).address, 'tcp://127.0.0.1:1');
  assert.throws(() => resolveWorkloadEndpoint(undefined, {}), {
    code: 'ERR_WORKLOADAPI_ENDPOINT_MISSING',
  });
});

test('backoff: 1 s doubling to 30 s, reset after a good message', () => {
  const b = new Backoff({ jitter: 0 });
  const seq = Array.from({ length: 8 }, () => b.next());
  assert.deepEqual(seq, [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  b.reset();
  assert.equal(b.next(), 1000);
  // Jitter only ever shortens the delay, so the 30 s bound holds.
  const j = new Backoff({ jitter: 0.5, random: () => 0.5 });
  assert.deepEqual([j.next(), j.next()], [750, 1500]);
});
