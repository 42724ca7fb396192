import { DECISION_PATH, parseDecision, validateInput, type PolicyEngine } from './decision.js';
import { PolicyError } from './errors.js';

export interface OpaServerPolicyOptions {
  /** The OPA server's base URL (`OPA_URL`), e.g. `http://127.0.0.1:8181`. */
  url: string | URL;
  /** The decision's data path. Default {@link DECISION_PATH}. */
  path?: string;
  /**
   * Whole-request budget in milliseconds (connect, send, answer). Default 2000. A slow OPA is
   * an unavailable OPA: the caller denies or answers 503 rather than queueing behind it.
   */
  timeoutMs?: number;
  /** Answers larger than this many bytes are refused unread. Default 65536. */
  maxResponseBytes?: number;
}

const PATH = /^[A-Za-z0-9_]+(?:\/[A-Za-z0-9_]+)*$/;

/**
 * Decisions from a real OPA server over its Data API: `POST <url>/v1/data/<path>` with
 * `{"input": ...}`. Fails closed: unreachable, slow, non-2xx, oversized, undefined or malformed
 * answers reject with a {@link PolicyError}, never resolve to an allow. Options are checked
 * here, so a bad `OPA_URL` fails at start-up with `ERR_POLICY_CONFIG`.
 */
export function opaServerPolicy(options: OpaServerPolicyOptions): PolicyEngine {
  const config = (message: string) => new PolicyError('ERR_POLICY_CONFIG', message);
  let base: URL;
  try {
    base = new URL(options.url);
  } catch (cause) {
    throw new PolicyError('ERR_POLICY_CONFIG', 'OPA URL is not a URL', { cause });
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') {
    throw config('OPA URL must be http or https');
  }
  // Credentials in the URL would end up in error messages and logs.
  if (base.username || base.password) throw config('OPA URL must not carry credentials');
  if (base.search || base.hash) throw config('OPA URL must not have a query or fragment');
  const path = options.path ?? DECISION_PATH;
  if (!PATH.test(path)) throw config('decision path must be slash-separated names');
  const timeoutMs = options.timeoutMs ?? 2000;
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw config('timeoutMs must be > 0');
  const maxResponseBytes = options.maxResponseBytes ?? 65536;
  if (!Number.isInteger(maxResponseBytes) || maxResponseBytes <= 0) {
    throw config('maxResponseBytes must be > 0');
  }
  const endpoint = new URL(`v1/data/${path}`, base.href.endsWith('/') ? base : `${base.href}/`);
  const where = endpoint.href;

  return {
    async decide(input) {
      const body = JSON.stringify({ input: validateInput(input) });
      const signal = AbortSignal.timeout(timeoutMs);
      let res: Response;
      try {
        res = await fetch(endpoint, {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/json' },
          body,
          signal,
          redirect: 'error',
        });
      } catch (cause) {
        const what = signal.aborted ? `timed out after ${timeoutMs} ms` : 'is unreachable';
        throw new PolicyError('ERR_POLICY_UNAVAILABLE', `OPA at ${where} ${what}`, { cause });
      }
      let text: string;
      try {
        text = await readBounded(res, maxResponseBytes);
      } catch (cause) {
        if (cause instanceof PolicyError) throw cause;
        const what = signal.aborted ? `timed out after ${timeoutMs} ms` : 'broke off its answer';
        throw new PolicyError('ERR_POLICY_UNAVAILABLE', `OPA at ${where} ${what}`, { cause });
      }
      if (res.status < 200 || res.status > 299) {
        throw new PolicyError('ERR_POLICY_UNAVAILABLE', `OPA at ${where} answered ${res.status}`);
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch (cause) {
        throw new PolicyError('ERR_POLICY_RESULT', `OPA at ${where} answered with non-JSON`, {
          cause,
        });
      }
      if (typeof parsed !== 'object' || parsed === null || !('result' in parsed)) {
        // OPA answers {} for an undefined document: the policy or its data is not loaded.
        throw new PolicyError('ERR_POLICY_RESULT', `OPA has no decision at ${where}`);
      }
      return parseDecision(parsed.result);
    },
  };
}

async function readBounded(res: Response, max: number): Promise<string> {
  const declared = Number(res.headers.get('content-length'));
  if (declared > max) {
    await res.body?.cancel();
    throw new PolicyError('ERR_POLICY_RESULT', `OPA answer is larger than ${max} bytes`);
  }
  if (!res.body) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel();
      throw new PolicyError('ERR_POLICY_RESULT', `OPA answer is larger than ${max} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}
