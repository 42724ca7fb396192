import type { ChildProcess } from 'node:child_process';

/**
 * Stops a child with `signal`, escalating to SIGKILL after `graceMs`, and resolves once it has
 * exited. A child that already exited resolves at once.
 */
export async function stopProcess(
  proc: ChildProcess | undefined,
  signal: NodeJS.Signals,
  graceMs: number,
): Promise<void> {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  proc.kill(signal);
  const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
  timer.unref();
  await exited;
  clearTimeout(timer);
}
