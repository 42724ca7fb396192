// Rendering deploy/helm/precinct with a real helm, for the deploy tests.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { requirePeer } from '@precinct/testing';
import type { K8sObject } from './checks.js';

const run = promisify(execFile);

export const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
/** The Kubernetes version manifests are rendered for and validated against. */
export const KUBE_VERSION = 'v1.37.2';
export const CHART = join(ROOT, 'deploy/helm/precinct');
export const valuesFile = (name: string) => join(ROOT, 'test/deploy/values', `${name}.yaml`);

export interface HelmResult {
  ok: boolean;
  stdout: string;
  stderr: string;
}

/** Runs helm; never throws for a non-zero exit (the result says). */
export async function helm(args: string[]): Promise<HelmResult> {
  try {
    const r = await run(requirePeer('helm'), args, {
      maxBuffer: 32 * 1024 * 1024,
      // A clean helm home: no repositories or plugins of the machine's user are read.
      env: {
        ...process.env,
        HELM_CONFIG_HOME: '/nonexistent',
        HELM_CACHE_HOME: '/nonexistent',
        HELM_DATA_HOME: '/nonexistent',
      },
    });
    return { ok: true, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    return { ok: false, stdout: e.stdout ?? '', stderr: e.stderr ?? e.message };
  }
}

export interface RenderOptions {
  values?: string[];
  set?: string[];
  namespace?: string;
  release?: string;
}

export function templateArgs(o: RenderOptions = {}): string[] {
  return [
    'template',
    o.release ?? 'precinct',
    CHART,
    '--namespace',
    o.namespace ?? 'precinct',
    // The version the server-side tests apply to (scripts/peers/kube-apiserver.sh).
    '--kube-version',
    KUBE_VERSION,
    ...(o.values ?? ['required']).flatMap((v) => ['--values', valuesFile(v)]),
    ...(o.set ?? []).flatMap((s) => ['--set', s]),
  ];
}

/** `helm template` text; throws with helm's message when rendering fails. */
export async function renderText(o: RenderOptions = {}): Promise<string> {
  const r = await helm(templateArgs(o));
  if (!r.ok) throw new Error(`helm template failed: ${r.stderr}`);
  return r.stdout;
}

/** `helm template` parsed into objects (empty documents dropped). */
export async function render(o: RenderOptions = {}): Promise<K8sObject[]> {
  return parseManifests(await renderText(o));
}

let converter: string | undefined;

/**
 * Parses multi-document YAML with helm itself (`fromYaml`, the sigs.k8s.io/yaml parser the
 * apiserver's clients use) into plain wire-format objects: a one-template chart that splits the
 * manifests and prints them as one JSON list. No YAML library of our own is involved.
 */
export async function parseManifests(text: string): Promise<K8sObject[]> {
  if (!converter) {
    const dir = mkdtempSync(join(tmpdir(), 'precinct-yaml2json-'));
    mkdirSync(join(dir, 'templates'));
    writeFileSync(join(dir, 'Chart.yaml'), 'apiVersion: v2\nname: yaml2json\nversion: 0.0.1\n');
    writeFileSync(
      join(dir, 'templates', 'list.yaml'),
      [
        '{{- $docs := list -}}',
        '{{- range regexSplit "(?m)^---[ \\t]*$" .Values.manifest -1 -}}',
        '{{- $d := fromYaml . -}}',
        '{{- if hasKey $d "Error" -}}{{- fail (printf "YAML: %s" $d.Error) -}}{{- end -}}',
        '{{- if $d -}}{{- $docs = append $docs $d -}}{{- end -}}',
        '{{- end -}}',
        '{{ toJson (dict "items" $docs) }}',
      ].join('\n'),
    );
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    converter = dir;
  }
  const file = join(
    converter,
    `manifest-${process.pid}-${Math.random().toString(36).slice(2)}.yaml`,
  );
  writeFileSync(file, text);
  try {
    const r = await helm(['template', 'x', converter, '--set-file', `manifest=${file}`]);
    if (!r.ok) throw new Error(`parsing manifests: ${r.stderr}`);
    const json = r.stdout.slice(r.stdout.indexOf('{'));
    return (JSON.parse(json) as { items: K8sObject[] }).items.filter(
      (d) => d && typeof d === 'object' && 'kind' in d,
    );
  } finally {
    rmSync(file, { force: true });
  }
}
