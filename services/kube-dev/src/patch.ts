/**
 * The three patch types of the Kubernetes API. Hand-written (about a hundred lines) rather than
 * a dependency: the objects kube-dev stores are small, and strategic merge patch needs
 * Kubernetes-specific list semantics no general JSON library has.
 */
import { ApiError } from './errors.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const isObject = (v: unknown): v is Record<string, Json> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** RFC 7386 JSON merge patch. */
export function mergePatch(target: unknown, patch: unknown): Json {
  if (!isObject(patch)) return structuredClone(patch) as Json;
  const out: Record<string, Json> = isObject(target) ? structuredClone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/**
 * Strategic merge patch for the types kube-dev serves. None of their lists carries a
 * patchMergeKey that matters here (rules and subjects are replaced whole, as in Kubernetes),
 * so it is a merge patch plus the `$patch: replace|delete` directive; the `$setElementOrder`,
 * `$retainKeys` and `$deleteFromPrimitiveList` directives are accepted and ignored.
 */
export function strategicMergePatch(target: unknown, patch: unknown): Json {
  if (!isObject(patch)) return structuredClone(patch) as Json;
  if (patch.$patch === 'replace') {
    const { $patch: _, ...rest } = patch;
    return stripDirectives(rest);
  }
  if (patch.$patch === 'delete') return null;
  const out: Record<string, Json> = isObject(target) ? structuredClone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith('$')) continue;
    if (v === null) delete out[k];
    else out[k] = strategicMergePatch(out[k], v);
  }
  return out;
}

function stripDirectives(v: Json): Json {
  if (Array.isArray(v)) return v.map(stripDirectives);
  if (!isObject(v)) return v;
  const out: Record<string, Json> = {};
  for (const [k, x] of Object.entries(v)) if (!k.startsWith('$')) out[k] = stripDirectives(x);
  return out;
}

function parsePointer(p: unknown): string[] {
  if (typeof p !== 'string' || (p !== '' && !p.startsWith('/'))) {
    throw new ApiError(400, 'BadRequest', `invalid JSON pointer "${String(p)}"`);
  }
  return p === ''
    ? []
    : p
        .slice(1)
        .split('/')
        .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function parentOf(doc: Json, path: string[]): { parent: Json; key: string } {
  let cur: Json = doc;
  for (const seg of path.slice(0, -1)) {
    if (Array.isArray(cur)) cur = cur[Number(seg)] as Json;
    else if (isObject(cur) && Object.hasOwn(cur, seg)) cur = cur[seg]!;
    else throw new ApiError(422, 'Invalid', `the path "/${path.join('/')}" does not exist`);
    if (cur === undefined)
      throw new ApiError(422, 'Invalid', `the path "/${path.join('/')}" does not exist`);
  }
  return { parent: cur, key: path[path.length - 1]! };
}

function getAt(doc: Json, path: string[]): Json {
  if (path.length === 0) return doc;
  const { parent, key } = parentOf(doc, path);
  const v = Array.isArray(parent)
    ? parent[Number(key)]
    : isObject(parent)
      ? parent[key]
      : undefined;
  if (v === undefined)
    throw new ApiError(422, 'Invalid', `the path "/${path.join('/')}" does not exist`);
  return v;
}

function arrayIndex(arr: Json[], key: string, forAdd: boolean): number {
  if (forAdd && key === '-') return arr.length;
  if (!/^(0|[1-9]\d*)$/.test(key))
    throw new ApiError(422, 'Invalid', `invalid array index "${key}"`);
  const i = Number(key);
  if (i > arr.length || (!forAdd && i === arr.length)) {
    throw new ApiError(422, 'Invalid', `array index ${i} out of range`);
  }
  return i;
}

function removeAt(doc: Json, path: string[]): Json {
  if (path.length === 0) throw new ApiError(422, 'Invalid', 'cannot remove the whole document');
  const { parent, key } = parentOf(doc, path);
  if (Array.isArray(parent)) return parent.splice(arrayIndex(parent, key, false), 1)[0]!;
  if (isObject(parent) && Object.hasOwn(parent, key)) {
    const v = parent[key]!;
    delete parent[key];
    return v;
  }
  throw new ApiError(422, 'Invalid', `the path "/${path.join('/')}" does not exist`);
}

function addAt(doc: Json, path: string[], value: Json): Json {
  if (path.length === 0) return value;
  const { parent, key } = parentOf(doc, path);
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, key, true), 0, value);
  else if (isObject(parent)) parent[key] = value;
  else throw new ApiError(422, 'Invalid', `the path "/${path.join('/')}" does not exist`);
  return doc;
}

/** RFC 6902 JSON patch (add, remove, replace, move, copy, test). */
export function jsonPatch(target: unknown, ops: unknown): Json {
  if (!Array.isArray(ops))
    throw new ApiError(400, 'BadRequest', 'a JSON patch must be an array of operations');
  let doc = structuredClone(target) as Json;
  for (const op of ops) {
    if (!isObject(op) || typeof op.op !== 'string') {
      throw new ApiError(400, 'BadRequest', 'each JSON patch operation needs an "op"');
    }
    const path = parsePointer(op.path);
    switch (op.op) {
      case 'add':
        if (!('value' in op)) throw new ApiError(400, 'BadRequest', 'add needs a value');
        doc = addAt(doc, path, structuredClone(op.value!));
        break;
      case 'remove':
        removeAt(doc, path);
        break;
      case 'replace':
        if (!('value' in op)) throw new ApiError(400, 'BadRequest', 'replace needs a value');
        if (path.length === 0) doc = structuredClone(op.value!);
        else {
          removeAt(doc, path);
          doc = addAt(doc, path, structuredClone(op.value!));
        }
        break;
      case 'move': {
        const v = removeAt(doc, parsePointer(op.from));
        doc = addAt(doc, path, v);
        break;
      }
      case 'copy':
        doc = addAt(doc, path, structuredClone(getAt(doc, parsePointer(op.from))));
        break;
      case 'test':
        if (JSON.stringify(getAt(doc, path)) !== JSON.stringify(op.value)) {
          throw new ApiError(422, 'Invalid', `test operation failed at "${String(op.path)}"`);
        }
        break;
      default:
        throw new ApiError(400, 'BadRequest', `unknown JSON patch operation "${op.op}"`);
    }
  }
  return doc;
}

export type PatchType = 'json' | 'merge' | 'strategic';

export const PATCH_CONTENT_TYPES: Record<string, PatchType> = {
  'application/json-patch+json': 'json',
  'application/merge-patch+json': 'merge',
  'application/strategic-merge-patch+json': 'strategic',
};

export function applyPatch(type: PatchType, target: unknown, patch: unknown): Json {
  try {
    if (type === 'json') return jsonPatch(target, patch);
    if (type === 'merge') return mergePatch(target, patch);
    return strategicMergePatch(target, patch);
  } catch (err) {
    // The merge functions recurse on the patch's depth, which the body parser bounds at 10000
    // levels; a document near that bound can still exhaust the stack. That is the client's
    // malformed input, not a server fault.
    if (err instanceof RangeError)
      throw new ApiError(400, 'BadRequest', 'the patch is nested too deeply to apply');
    throw err;
  }
}
