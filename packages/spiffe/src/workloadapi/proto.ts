import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

// Raw message shapes as @grpc/proto-loader decodes them (keepCase, defaults: true), so a
// missing field shows up as its default value ('' or an empty Buffer), which is exactly what
// the spec's "mandatory field has its default value" rule (Workload API 4.5) tests for.

export interface RawX509Svid {
  spiffe_id: string;
  x509_svid: Buffer;
  x509_svid_key: Buffer;
  bundle: Buffer;
  hint: string;
}
export interface RawX509SvidResponse {
  svids: RawX509Svid[];
  crl: Buffer[];
  federated_bundles: Record<string, Buffer>;
}
export interface RawX509BundlesResponse {
  crl: Buffer[];
  bundles: Record<string, Buffer>;
}
export interface RawJwtSvid {
  spiffe_id: string;
  svid: string;
  hint: string;
}
export interface RawJwtSvidRequest {
  audience: string[];
  spiffe_id: string;
}
export interface RawJwtSvidResponse {
  svids: RawJwtSvid[];
}
export interface RawJwtBundlesResponse {
  bundles: Record<string, Buffer>;
}
export interface RawValidateJwtSvidRequest {
  audience: string;
  svid: string;
}
export interface RawStruct {
  fields?: Record<string, RawValue>;
}
export interface RawValue {
  kind?: string;
  nullValue?: unknown;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: RawStruct;
  listValue?: { values?: RawValue[] };
}
export interface RawValidateJwtSvidResponse {
  spiffe_id: string;
  claims: RawStruct | null;
}

/** The header every Workload API call carries (Workload Endpoint spec, section 3). */
export const SECURITY_HEADER = 'workload.spiffe.io';

function protoPath(): string {
  // From source (src/workloadapi) and from a build (dist/workloadapi) alike.
  for (const rel of ['../proto/workload.proto', '../../src/proto/workload.proto']) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new Error('workloadapi: workload.proto not found next to the package sources');
}

let cached: grpc.ServiceClientConstructor | undefined;
let cachedDefinition: grpc.ServiceDefinition | undefined;

function load(): void {
  if (cached) return;
  const def = protoLoader.loadSync(protoPath(), {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    arrays: true,
    objects: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(def);
  cached = pkg['SpiffeWorkloadAPI'] as grpc.ServiceClientConstructor;
  cachedDefinition = cached.service;
}

/** The generated client constructor for `SpiffeWorkloadAPI`. */
export function workloadApiClientConstructor(): grpc.ServiceClientConstructor {
  load();
  return cached!;
}

/** The service definition, for servers (the test server and the conformance mock). */
export function workloadApiServiceDefinition(): grpc.ServiceDefinition {
  load();
  return cachedDefinition!;
}

/** google.protobuf.Struct (as decoded by proto-loader) to a plain JSON object. */
export function structToJson(s: RawStruct | null | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s?.fields ?? {})) out[k] = valueToJson(v);
  return out;
}

function valueToJson(v: RawValue): unknown {
  switch (v.kind) {
    case 'numberValue':
      return v.numberValue;
    case 'stringValue':
      return v.stringValue;
    case 'boolValue':
      return v.boolValue;
    case 'structValue':
      return structToJson(v.structValue);
    case 'listValue':
      return (v.listValue?.values ?? []).map(valueToJson);
    default:
      return null;
  }
}

/** A plain JSON object to google.protobuf.Struct, for servers. */
export function jsonToStruct(o: Record<string, unknown>): RawStruct {
  const fields: Record<string, RawValue> = {};
  for (const [k, v] of Object.entries(o)) fields[k] = jsonToValue(v);
  return { fields };
}

function jsonToValue(v: unknown): RawValue {
  if (v === null || v === undefined) return { nullValue: 'NULL_VALUE' };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(jsonToValue) } };
  return { structValue: jsonToStruct(v as Record<string, unknown>) };
}
