/**
 * Shared by the bench scripts: statistics, plain-text tables, the machine description that goes
 * with every number, result files, and a private temporary directory removed on exit and on
 * SIGINT / SIGTERM.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';

// ---------------------------------------------------------------------------------------------
// statistics

export interface Stats {
  n: number;
  median: number;
  /** nearest rank: the ceil(0.95 n)-th smallest sample (the 29th of 30) */
  p95: number;
  min: number;
  max: number;
  mean: number;
}

export function stats(samples: readonly number[]): Stats {
  if (samples.length === 0) throw new Error('stats: no samples');
  const s = [...samples].sort((a, b) => a - b);
  const n = s.length;
  const mid = n >> 1;
  const median = n % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  const p95 = s[Math.min(n - 1, Math.ceil(0.95 * n) - 1)]!;
  return { n, median, p95, min: s[0]!, max: s[n - 1]!, mean: s.reduce((a, b) => a + b, 0) / n };
}

// ---------------------------------------------------------------------------------------------
// tables

/** A plain-text table: the first `left` columns left-aligned (text), the others right-aligned. */
export function table(head: readonly string[], rows: readonly (readonly string[])[], left = 1): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i < left ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export const fixed = (x: number, digits = 1): string => x.toFixed(digits);
export const signedPct = (rel: number, digits = 2): string => {
  const v = Number((rel * 100).toFixed(digits)); // -0.001 % prints as +0.00 %, not -0.00 %
  return `${v >= 0 ? '+' : ''}${v.toFixed(digits)} %`;
};

// ---------------------------------------------------------------------------------------------
// the machine the numbers come from

export interface Machine {
  kernel: string;
  node: string;
  cpus: number;
  cpuModel: string;
  memGiB: number;
  /** 1, 5, 15 minute load averages */
  loadStart: number[];
  loadEnd?: number[];
}

export function machine(): Machine {
  const c = cpus();
  return {
    kernel: release(),
    node: process.version,
    cpus: c.length,
    cpuModel: c[0]?.model ?? 'unknown',
    memGiB: Math.round(totalmem() / 2 ** 30),
    loadStart: loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

export const loadText = (l: readonly number[]): string => l.map((x) => x.toFixed(2)).join(', ');

// ---------------------------------------------------------------------------------------------
// files

/** The repository root: the launcher (bench/run.mjs) runs scripts there. */
export function repoRoot(): string {
  const root = resolve(process.cwd());
  try {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name?: string };
    if (pkg.name === 'netqos') return root;
  } catch {
    // fall through
  }
  throw new Error(`run the bench scripts from the netqos repository (cwd ${root} is not it): node bench/run.mjs bench/<script>.ts`);
}

/** Writes bench/results/<name>-<timestamp>.json (git-ignored) and returns its path. */
export function writeResult(name: string, data: unknown): string {
  const dir = join(repoRoot(), 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const file = join(dir, `${name}-${stamp}.json`);
  writeFileSync(file, `${JSON.stringify(data, null, 2)}\n`);
  return file;
}

/**
 * A private directory under the system temp dir (nqt-bench-…), removed at exit and on SIGINT /
 * SIGTERM. Call it before creating any namespace: its signal handler must run before the one
 * test/support/fixtures.ts installs (that one re-raises the signal to end the process).
 */
export function privateTempDir(tag: string): string {
  const dir = mkdtempSync(join(tmpdir(), `nqt-bench-${tag}-`));
  const remove = (): void => {
    if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', remove);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      process.stderr.write(`\n${sig}: cleaning up\n`);
      remove();
      // fixtures.ts's handler (namespaces, processes) runs next and re-raises the signal; when
      // there is none, end the process the way the signal would have
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    });
  }
  return dir;
}

export const hex = (bytes: number): string => randomBytes(bytes).toString('hex');

export const requireRootUser = (): void => {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new Error(`the bench needs root (network namespaces, tc); uid is ${process.getuid()}`);
  }
};
