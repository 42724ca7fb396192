// Memory readings the benches share. Figures come from /proc (Linux), where the peak RSS
// (VmHWM) is kept by the kernel, which process.memoryUsage() does not report.
import { readFileSync } from 'node:fs';

/**
 * Full collections (the process must run with --expose-gc) until the heap stops shrinking.
 * Self-contained on purpose: the kube-memory reference runs its source text in a bare node.
 */
export async function settleHeap(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with --expose-gc');
  let last = Infinity;
  for (let i = 0; i < 5; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 20));
    const h = process.memoryUsage().heapUsed;
    if (h >= last - 64 * 1024) break;
    last = h;
  }
}

/** VmRSS and VmHWM (peak RSS) of a process, in bytes. */
export function procMemory(pid: number | 'self' = 'self'): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) =>
    Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}
