/** Prints a benchmark table: our figure beside a reference measured in the same run. */
export interface Row {
  metric: string;
  ours: number;
  reference?: number;
  unit: string;
  /** e.g. '>= 70% of reference', '< 1 ms' */
  target: string;
  /** Whether the target was met; printed as PASS/MISS. */
  met: boolean;
  /** ratio to print; default ours/reference */
  ratio?: number;
}

const fmt = (n: number) =>
  n >= 100 ? Math.round(n).toLocaleString('en-US') : n >= 1 ? n.toFixed(2) : n.toFixed(3);

export function printTable(title: string, rows: Row[]): void {
  const header = ['metric', 'ours', 'reference', 'ratio', 'target', ''];
  const body = rows.map((r) => {
    const ratio = r.ratio ?? (r.reference ? r.ours / r.reference : undefined);
    return [
      r.metric,
      `${fmt(r.ours)} ${r.unit}`,
      r.reference === undefined ? '-' : `${fmt(r.reference)} ${r.unit}`,
      ratio === undefined ? '-' : `${(ratio * 100).toFixed(1)}%`,
      r.target,
      r.met ? 'PASS' : 'MISS',
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) =>
    '| ' + cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ') + ' |';
  console.log(`\n${title}\n`);
  console.log(line(header));
  console.log('|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|');
  for (const b of body) console.log(line(b));
}

/** Runs fn repeatedly for about `ms` milliseconds; returns operations per second. */
export async function rate(fn: () => unknown, ms = 2000): Promise<number> {
  // warm-up
  for (let i = 0; i < 200; i++) await fn();
  let n = 0;
  const start = performance.now();
  let now = start;
  while (now - start < ms) {
    for (let i = 0; i < 100; i++) await fn();
    n += 100;
    now = performance.now();
  }
  return (n * 1000) / (now - start);
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
