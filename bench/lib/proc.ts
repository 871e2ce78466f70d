/**
 * Processes the bench runs itself (busybox ping, the CNI plugin, bash timing loops, a tc stats
 * session): every one has a deadline and is registered with the fixtures' registry by PID, so
 * Ctrl-C and the end of the run kill exactly these and nothing else.
 */
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { registerPid, unregisterPid } from '../../test/support/fixtures.js';
import type { TcQdiscStats } from '../../test/support/traffic.js';

export interface Done {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface SpawnOptions {
  input?: string;
  timeoutMs: number;
  env?: NodeJS.ProcessEnv;
  /** /proc/<pid>/comm once the program runs (nsenter execs it): what cleanup checks before a kill */
  comm: string;
}

/** Runs a program to its end (or its deadline: SIGKILL, code 137). Never throws on exit codes. */
export function runTracked(file: string, args: readonly string[], o: SpawnOptions): Promise<Done> {
  const t0 = performance.now();
  const child = spawn(file, args, { stdio: [o.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], env: { LC_ALL: 'C', ...o.env } });
  if (child.pid !== undefined) registerPid(child.pid, o.comm);
  if (o.input !== undefined) {
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(o.input);
  }
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs);
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${file}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (child.pid !== undefined) unregisterPid(child.pid);
      resolve({
        code: code ?? (signal === 'SIGKILL' ? 137 : 128),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        ms: performance.now() - t0,
      });
    });
  });
}

/**
 * A `tc -s -j -batch -` kept open in a namespace: one process answers every counter read, so a
 * sample costs a pipe round trip (well under 1 ms) instead of a process (2 to 5 ms here), and
 * sampling every 10 ms does not load the machine it measures.
 */
export class TcStatsSession {
  private readonly child;
  private buf = '';
  private waiting: ((line: string) => void)[] = [];
  private closed = false;

  constructor(ns: string) {
    this.child = spawn('/usr/sbin/tc', ['-n', ns, '-s', '-j', '-batch', '-'], { stdio: ['pipe', 'pipe', 'pipe'], env: { LC_ALL: 'C' } });
    if (this.child.pid !== undefined) registerPid(this.child.pid, 'tc');
    this.child.stdin.on('error', () => undefined);
    this.child.stdout.on('data', (b: Buffer) => {
      this.buf += b.toString('utf8');
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        if (line.trim() === '') continue;
        this.waiting.shift()?.(line);
      }
    });
    this.child.on('close', () => {
      this.closed = true;
      if (this.child.pid !== undefined) unregisterPid(this.child.pid);
      for (const w of this.waiting.splice(0)) w('');
    });
  }

  /** `qdisc show dev <dev>`: the qdiscs of one device as tc -j prints them */
  read(dev: string): Promise<TcQdiscStats[]> {
    if (this.closed) return Promise.reject(new Error('tc stats session ended'));
    return new Promise((resolve, reject) => {
      this.waiting.push((line) => {
        if (line === '') reject(new Error(`tc stats session ended while reading ${dev}`));
        else {
          try {
            resolve(JSON.parse(line) as TcQdiscStats[]);
          } catch (e) {
            reject(new Error(`tc printed no JSON for ${dev}: ${line.slice(0, 120)}`));
          }
        }
      });
      this.child.stdin.write(`qdisc show dev ${dev}\n`);
    });
  }

  close(): void {
    if (!this.closed) this.child.stdin.end();
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
