import { spawn, type ChildProcess } from 'node:child_process';

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

/** Children started together by a launcher, with one prefixed log and one ordered stop. */
export interface ProcessGroup {
  /** Starts `bin` in `cwd`; its stdout and stderr go to the group's log as `[name] line`. */
  start(name: string, bin: string, args: string[]): ChildProcess;
  /** Whether any child has exited (a launcher waiting for readiness should give up). */
  exited(): boolean;
  /** The log so far (the newest part when it grew past the cap). */
  log(): string;
  /** Stops the children in reverse start order (SIGTERM, SIGKILL after 5 s). */
  stop(): Promise<void>;
}

export function processGroup(cwd: string, maxLogChars = 2_000_000): ProcessGroup {
  const procs: ChildProcess[] = [];
  let text = '';
  const capture = (name: string) => (b: Buffer) => {
    text += b
      .toString()
      .split('\n')
      .map((l) => (l ? `[${name}] ${l}` : l))
      .join('\n');
    if (text.length > maxLogChars) text = text.slice(-(maxLogChars >> 1));
  };
  return {
    start(name, bin, args) {
      const p = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd });
      p.stdout?.on('data', capture(name));
      p.stderr?.on('data', capture(name));
      procs.push(p);
      return p;
    },
    exited: () => procs.some((p) => p.exitCode !== null || p.signalCode !== null),
    log: () => text,
    async stop() {
      for (const p of [...procs].reverse()) await stopProcess(p, 'SIGTERM', 5000);
    },
  };
}
