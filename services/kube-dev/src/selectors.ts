import { ApiError } from './errors.js';
import type { KubeObject } from './store.js';

type Requirement = (labels: Record<string, string>) => boolean;

/** Parses a label selector (`a=b`, `a==b`, `a!=b`, `a`, `!a`, `a in (x,y)`, `a notin (x)`). */
export function parseLabelSelector(s: string | null): (o: KubeObject) => boolean {
  if (!s || !s.trim()) return () => true;
  const reqs: Requirement[] = [];
  // Split on commas outside parentheses.
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  parts.push(cur);
  for (const raw of parts) {
    const p = raw.trim();
    let m: RegExpExecArray | null;
    if ((m = /^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(p))) {
      const [, k, op, list] = m;
      const set = new Set(list!.split(',').map((x) => x.trim()));
      reqs.push((l) => (op === 'in' ? k! in l && set.has(l[k!]!) : !(k! in l) || !set.has(l[k!]!)));
    } else if ((m = /^([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)$/.exec(p))) {
      const [, k, op, v] = m;
      reqs.push((l) => (op === '!=' ? l[k!] !== v : l[k!] === v));
    } else if ((m = /^!([\w./-]+)$/.exec(p))) {
      const k = m[1]!;
      reqs.push((l) => !(k in l));
    } else if ((m = /^([\w./-]+)$/.exec(p))) {
      const k = m[1]!;
      reqs.push((l) => k in l);
    } else {
      throw new ApiError(400, 'BadRequest', `unable to parse requirement: "${p}"`);
    }
  }
  return (o) => reqs.every((r) => r(o.metadata.labels ?? {}));
}

/** Field selectors on metadata.name and metadata.namespace (what informers and kubectl use). */
export function parseFieldSelector(s: string | null): (o: KubeObject) => boolean {
  if (!s || !s.trim()) return () => true;
  const reqs: Array<(o: KubeObject) => boolean> = [];
  for (const raw of s.split(',')) {
    const m = /^\s*([\w.]+)\s*(==|=|!=)\s*([^,]*?)\s*$/.exec(raw);
    if (!m) throw new ApiError(400, 'BadRequest', `invalid field selector: "${raw}"`);
    const [, field, op, value] = m;
    let get: (o: KubeObject) => string;
    if (field === 'metadata.name') get = (o) => o.metadata.name;
    else if (field === 'metadata.namespace') get = (o) => o.metadata.namespace ?? '';
    else throw new ApiError(400, 'BadRequest', `field label not supported: ${field}`);
    reqs.push((o) => (op === '!=' ? get(o) !== value : get(o) === value));
  }
  return (o) => reqs.every((r) => r(o));
}
