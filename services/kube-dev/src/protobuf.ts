/**
 * Decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`) into
 * the JSON form, for the kinds kube-dev serves. kubectl's typed clients (create namespace,
 * create sa, create token, auth can-i, create role...) send protobuf and do not fall back to
 * JSON. Hand-written because only decoding of a dozen small messages is needed and the
 * generated Kubernetes descriptors are not published for JavaScript; responses are JSON, which
 * every client accepts.
 */
import { ApiError } from './errors.js';

type FieldKind = 'string' | 'int' | 'bool' | 'strings' | 'stringMap' | 'extraMap' | 'time';
type Field =
  [name: string, kind: FieldKind] | [name: string, kind: 'msg' | 'msgs', schema: () => Schema];
type Schema = Record<number, Field>;

const MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]); // "k8s\0"

const objectMeta = (): Schema => ({
  1: ['name', 'string'],
  2: ['generateName', 'string'],
  3: ['namespace', 'string'],
  5: ['uid', 'string'],
  6: ['resourceVersion', 'string'],
  7: ['generation', 'int'],
  8: ['creationTimestamp', 'time'],
  11: ['labels', 'stringMap'],
  12: ['annotations', 'stringMap'],
  14: ['finalizers', 'strings'],
});
const objectReference = (): Schema => ({
  1: ['kind', 'string'],
  2: ['namespace', 'string'],
  3: ['name', 'string'],
  4: ['uid', 'string'],
  5: ['apiVersion', 'string'],
});
const policyRule = (): Schema => ({
  1: ['verbs', 'strings'],
  2: ['apiGroups', 'strings'],
  3: ['resources', 'strings'],
  4: ['resourceNames', 'strings'],
  5: ['nonResourceURLs', 'strings'],
});
const subject = (): Schema => ({
  1: ['kind', 'string'],
  2: ['apiGroup', 'string'],
  3: ['name', 'string'],
  4: ['namespace', 'string'],
});
const roleRef = (): Schema => ({
  1: ['apiGroup', 'string'],
  2: ['kind', 'string'],
  3: ['name', 'string'],
});
const resourceAttributes = (): Schema => ({
  1: ['namespace', 'string'],
  2: ['verb', 'string'],
  3: ['group', 'string'],
  4: ['version', 'string'],
  5: ['resource', 'string'],
  6: ['subresource', 'string'],
  7: ['name', 'string'],
});
const nonResourceAttributes = (): Schema => ({ 1: ['path', 'string'], 2: ['verb', 'string'] });
const accessReviewSpec = (): Schema => ({
  1: ['resourceAttributes', 'msg', resourceAttributes],
  2: ['nonResourceAttributes', 'msg', nonResourceAttributes],
  3: ['user', 'string'],
  4: ['groups', 'strings'],
  5: ['extra', 'extraMap'],
  6: ['uid', 'string'],
});
const withMeta = (rest: Schema): Schema => ({ 1: ['metadata', 'msg', objectMeta], ...rest });

const KINDS: Record<string, Schema> = {
  Namespace: withMeta({ 2: ['spec', 'msg', () => ({ 1: ['finalizers', 'strings'] })] }),
  ServiceAccount: withMeta({
    2: ['secrets', 'msgs', objectReference],
    3: ['imagePullSecrets', 'msgs', () => ({ 1: ['name', 'string'] })],
    4: ['automountServiceAccountToken', 'bool'],
  }),
  TokenRequest: withMeta({
    2: [
      'spec',
      'msg',
      () => ({
        1: ['audiences', 'strings'],
        4: ['expirationSeconds', 'int'],
        3: [
          'boundObjectRef',
          'msg',
          () => ({
            1: ['kind', 'string'],
            2: ['apiVersion', 'string'],
            3: ['name', 'string'],
            4: ['uid', 'string'],
          }),
        ],
      }),
    ],
  }),
  TokenReview: withMeta({
    2: ['spec', 'msg', () => ({ 1: ['token', 'string'], 2: ['audiences', 'strings'] })],
  }),
  SelfSubjectReview: withMeta({}),
  SubjectAccessReview: withMeta({ 2: ['spec', 'msg', accessReviewSpec] }),
  LocalSubjectAccessReview: withMeta({ 2: ['spec', 'msg', accessReviewSpec] }),
  SelfSubjectAccessReview: withMeta({
    2: [
      'spec',
      'msg',
      () => ({
        1: ['resourceAttributes', 'msg', resourceAttributes],
        2: ['nonResourceAttributes', 'msg', nonResourceAttributes],
      }),
    ],
  }),
  SelfSubjectRulesReview: withMeta({ 2: ['spec', 'msg', () => ({ 1: ['namespace', 'string'] })] }),
  Role: withMeta({ 2: ['rules', 'msgs', policyRule] }),
  ClusterRole: withMeta({ 2: ['rules', 'msgs', policyRule] }),
  RoleBinding: withMeta({ 2: ['subjects', 'msgs', subject], 3: ['roleRef', 'msg', roleRef] }),
  ClusterRoleBinding: withMeta({
    2: ['subjects', 'msgs', subject],
    3: ['roleRef', 'msg', roleRef],
  }),
};

const bad = (why: string) => new ApiError(400, 'BadRequest', `invalid protobuf body: ${why}`);

class Reader {
  pos = 0;
  constructor(readonly buf: Buffer) {}
  get done() {
    return this.pos >= this.buf.length;
  }
  varint(): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.buf.length) throw bad('truncated varint');
      const b = this.buf[this.pos++]!;
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 128;
    }
    throw bad('varint too long');
  }
  bytes(): Buffer {
    const len = this.varint();
    if (this.pos + len > this.buf.length) throw bad('truncated field');
    const b = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return b;
  }
  skip(wire: number) {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.bytes();
    else if (wire === 5) this.pos += 4;
    else throw bad(`unsupported wire type ${wire}`);
    if (this.pos > this.buf.length) throw bad('truncated field');
  }
}

function* fields(buf: Buffer): Generator<[number, number, Reader]> {
  const r = new Reader(buf);
  while (!r.done) {
    const tag = r.varint();
    yield [Math.floor(tag / 8), tag & 7, r];
  }
}

function mapEntry(buf: Buffer, value: (b: Buffer) => unknown): [string, unknown] {
  let k = '';
  let v: unknown;
  for (const [no, wire, r] of fields(buf)) {
    if (no === 1 && wire === 2) k = r.bytes().toString('utf8');
    else if (no === 2 && wire === 2) v = value(r.bytes());
    else r.skip(wire);
  }
  return [k, v];
}

function decodeMessage(buf: Buffer, schema: Schema, depth = 0): Record<string, unknown> {
  if (depth > 16) throw bad('nested too deep');
  const out: Record<string, unknown> = {};
  for (const [no, wire, r] of fields(buf)) {
    const f = schema[no];
    if (!f) {
      r.skip(wire);
      continue;
    }
    const [name, kind] = f;
    const want = kind === 'int' || kind === 'bool' ? 0 : 2;
    if (wire !== want) throw bad(`field ${name} has wire type ${wire}`);
    switch (kind) {
      case 'string': {
        const s = r.bytes().toString('utf8');
        if (s !== '') out[name] = s;
        break;
      }
      case 'int':
        out[name] = r.varint();
        break;
      case 'bool':
        out[name] = r.varint() !== 0;
        break;
      case 'strings':
        ((out[name] ??= []) as string[]).push(r.bytes().toString('utf8'));
        break;
      case 'stringMap': {
        const [k, v] = mapEntry(r.bytes(), (b) => b.toString('utf8'));
        ((out[name] ??= {}) as Record<string, unknown>)[k] = v ?? '';
        break;
      }
      case 'extraMap': {
        const [k, v] = mapEntry(
          r.bytes(),
          (b) => (decodeMessage(b, { 1: ['items', 'strings'] }, depth + 1).items as string[]) ?? [],
        );
        ((out[name] ??= {}) as Record<string, unknown>)[k] = v ?? [];
        break;
      }
      case 'time': {
        const t = decodeMessage(r.bytes(), { 1: ['seconds', 'int'] }, depth + 1);
        if (typeof t.seconds === 'number' && t.seconds > 0)
          out[name] = new Date(t.seconds * 1000).toISOString();
        break;
      }
      case 'msg':
        out[name] = decodeMessage(r.bytes(), f[2](), depth + 1);
        break;
      case 'msgs':
        ((out[name] ??= []) as unknown[]).push(decodeMessage(r.bytes(), f[2](), depth + 1));
        break;
    }
  }
  return out;
}

/** Decodes a `k8s\0`-prefixed runtime.Unknown envelope into the object's JSON form. */
export function decodeProtobufObject(body: Buffer): Record<string, unknown> {
  if (body.length < 4 || !body.subarray(0, 4).equals(MAGIC)) throw bad('missing k8s envelope');
  const env = decodeMessage(body.subarray(4), {
    1: ['typeMeta', 'msg', () => ({ 1: ['apiVersion', 'string'], 2: ['kind', 'string'] })],
    3: ['contentEncoding', 'string'],
    4: ['contentType', 'string'],
  });
  let raw: Buffer | undefined;
  for (const [no, wire, r] of fields(body.subarray(4))) {
    if (no === 2 && wire === 2) raw = r.bytes();
    else r.skip(wire);
  }
  const tm = (env.typeMeta ?? {}) as { apiVersion?: string; kind?: string };
  if (env.contentEncoding) throw bad('content encoding is not supported');
  const schema = tm.kind ? KINDS[tm.kind] : undefined;
  if (!schema || !raw) {
    throw new ApiError(
      415,
      'UnsupportedMediaType',
      `protobuf is not supported for kind "${tm.kind ?? ''}"; send application/json`,
    );
  }
  return { apiVersion: tm.apiVersion, kind: tm.kind, ...decodeMessage(raw, schema) };
}
