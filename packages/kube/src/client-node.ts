import { createRequire } from 'node:module';
import type * as ClientNode from '@kubernetes/client-node';
import { KubeConfigError } from './errors.js';

let loaded: typeof ClientNode | undefined;

/**
 * `@kubernetes/client-node`, loaded on first use only: importing it costs ~70 MB of RSS, which a
 * process that verifies tokens offline (JWKS) and answers its reviews itself (`review`) never
 * needs to pay. Loaded with require() (of an ES module: Node >= 20.19 or >= 22.12) so that
 * loadKubeConfig and the constructors that take a KubeConfig stay synchronous.
 */
export function clientNode(): typeof ClientNode {
  if (!loaded) {
    try {
      loaded = createRequire(import.meta.url)('@kubernetes/client-node') as typeof ClientNode;
    } catch (err) {
      if ((err as { code?: unknown }).code === 'ERR_REQUIRE_ESM') {
        throw new KubeConfigError(
          '@kubernetes/client-node is loaded with require(esm): Node >= 20.19 or >= 22.12 is needed',
          { cause: err },
        );
      }
      throw err;
    }
  }
  return loaded;
}
