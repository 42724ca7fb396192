import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  KubeAuthError,
  KubeConfigError,
  KubeError,
  KubeUnavailableError,
  type KubeErrorCode,
} from '@precinct/kube';

test('KubeError.code is an ERR_* union: an unknown code does not compile', () => {
  const code: KubeErrorCode = 'ERR_TOKEN_EXPIRED';
  assert.equal(new KubeAuthError(code, 'x').code, 'ERR_TOKEN_EXPIRED');
  // @ts-expect-error the typecheck fails here if `code` is widened back to string
  const wrong = new KubeAuthError('ERR_KUBE_UNAVAILABLE', 'x');
  assert.ok(wrong instanceof KubeError);
  // Each subclass carries its own fixed code.
  assert.equal(new KubeUnavailableError('x').code, 'ERR_KUBE_UNAVAILABLE');
  assert.equal(new KubeConfigError('x').code, 'ERR_KUBE_CONFIG');
});
