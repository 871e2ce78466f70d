/**
 * The built CLI's doctor and demo on the real kernel: doctor passes here and lists the kernel
 * features; the demo measures egress 10M and ingress 20M within 5 % at layer 2 and leaves
 * nothing behind, also when interrupted.
 */
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { beforeAll, expect } from 'vitest';
import { run, type RunResult } from '../../src/kernel/runner.js';
import { requireRoot } from '../support/fixtures.js';

const root = requireRoot(['ip', 'tc', 'nsenter', 'unshare', 'iperf3']);

function cli(args: readonly string[], opts: { timeoutMs?: number; onSpawn?: (pid: number) => void } = {}): Promise<RunResult> {
  return run(process.execPath, ['dist/netqos.cjs', ...args], { allowFail: true, timeoutMs: opts.timeoutMs ?? 30_000, env: process.env, ...(opts.onSpawn ? { onSpawn: opts.onSpawn } : {}) });
}

const lines = (text: string): string[] => text.split('\n').filter((l) => l !== '');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** the demo names its namespaces nqdemo-<4 hex>-a / -b; its first line says which */
function demoId(stdout: string): string {
  const id = /setting up nqdemo-([0-9a-f]{4})-a and nqdemo-\1-b/.exec(stdout)?.[1];
  if (!id) throw new Error(`no demo namespaces in: ${stdout.slice(0, 200)}`);
  return id;
}

function leftovers(id: string): string[] {
  const left = [`/run/netns/nqdemo-${id}-a`, `/run/netns/nqdemo-${id}-b`].filter((p) => existsSync(p));
  const tmp = readdirSync('/tmp').filter((f) => f.startsWith(`nqdemo-${id}-`));
  return [...left, ...tmp.map((f) => `/tmp/${f}`)];
}

function comm(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return [];
  }
}

/** the children of pid (from /proc/<pid>/task/<pid>/children) */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** processes whose network namespace is one of `inodes` */
function processesIn(inodes: ReadonlySet<string>): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const m = /^net:\[(\d+)\]$/.exec(readlinkSync(`/proc/${entry}/ns/net`));
      if (m && inodes.has(m[1]!)) found.push(Number(entry));
    } catch {
      // gone, or not ours to read
    }
  }
  return found;
}

root.describe('netqos doctor and demo on the real kernel', () => {
  beforeAll(async () => {
    await run(process.execPath, ['packaging/build.mjs'], { timeoutMs: 60_000, env: process.env });
  });

  root.it('doctor exits 0 here and lists the kernel features, htb present', async () => {
    const res = await cli(['doctor']);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/^AREA +CHECK +STATE +DETAIL\n/);
    for (const f of ['htb', 'bfifo', 'ingress', 'u32', 'mirred', 'ifb']) {
      expect(res.stdout).toMatch(new RegExp(`\\nkernel +${f} +present +required: `));
    }
    expect(res.stdout).toMatch(/\nkernel +fq_codel +(present|missing) +optional: /);
    expect(res.stdout).toMatch(/\ntool +tc +found +\/\S+\/tc /);
    expect(res.stdout).toMatch(/\nnode +node +ok +v\d+/);
    expect(res.stdout).toMatch(/\nhooks\.d +50-netqos\.json +/);
    expect(res.stdout).toMatch(/\nconfig +\S+ +(absent|valid) +/);
    expect(res.stdout).toMatch(/\nnetqos doctor: everything netqos needs is here\n$/);

    const json = JSON.parse((await cli(['doctor', '--json'])).stdout) as { ok: boolean; checks: { area: string; name: string; ok: boolean; required: boolean }[] };
    expect(json.ok).toBe(true);
    expect(json.checks.find((c) => c.area === 'kernel' && c.name === 'htb')).toMatchObject({ ok: true, required: true });
    expect(json.checks.filter((c) => c.area === 'runtime').map((c) => c.name)).toEqual(['podman', 'crun', 'runc', 'containerd']);
  });

  root.it('demo --seconds 3: both directions within 5 % of 10M and 20M at layer 2, nothing left behind', async () => {
    const res = await cli(['demo', '--seconds', '3'], { timeoutMs: 90_000 });
    process.stdout.write(`[cli-demo]\n${res.stdout}`);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    const id = demoId(res.stdout);
    const row = (dir: string): { configured: string; l2: number; goodput: number } => {
      const m = new RegExp(`\\n${dir} +(?:a -> b|b -> a) +\\S+ +(\\S+) +([\\d.]+)M +[+-]?[\\d.]+ % +([\\d.]+)M +[\\d.]+ %\\n`).exec(res.stdout);
      if (!m) throw new Error(`no ${dir} row in:\n${res.stdout}`);
      return { configured: m[1]!, l2: Number(m[2]) * 1e6, goodput: Number(m[3]) * 1e6 };
    };
    const egress = row('egress');
    const ingress = row('ingress');
    expect(egress.configured).toBe('10M');
    expect(ingress.configured).toBe('20M');
    expect(Math.abs(egress.l2 / 10e6 - 1)).toBeLessThan(0.05);
    expect(Math.abs(ingress.l2 / 20e6 - 1)).toBeLessThan(0.05);
    // goodput is TCP payload: below L2, about 95.6 % of it
    for (const r of [egress, ingress]) expect(r.goodput / r.l2).toBeGreaterThan(0.85);
    for (const r of [egress, ingress]) expect(r.goodput / r.l2).toBeLessThan(1);
    expect(res.stdout).toMatch(new RegExp(`\\ndeleted nqdemo-${id}-a and nqdemo-${id}-b: nothing left behind\\n$`));
    expect(leftovers(id)).toEqual([]);
  });

  root.it('demo --json gives the same measurement as data', async () => {
    const res = await cli(['demo', '--seconds', '2', '--json'], { timeoutMs: 90_000 });
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    const doc = JSON.parse(res.stdout) as { namespaces: string[]; results: { direction: string; configuredBps: number; measuredL2Bps: number; error: number }[] };
    expect(doc.results.map((r) => [r.direction, r.configuredBps])).toEqual([['egress', 10e6], ['ingress', 20e6]]);
    for (const r of doc.results) expect(Math.abs(r.error)).toBeLessThan(0.05);
    for (const ns of doc.namespaces) expect(existsSync(`/run/netns/${ns}`)).toBe(false);
  });

  root.it('demo whose reader goes away (| head -n 1) still cleans up after itself', async () => {
    const shell = `'${process.execPath}' dist/netqos.cjs demo --seconds 2 | head -n 1`;
    // sh waits for both sides of the pipe: this returns when the demo has finished
    const res = await run('/bin/sh', ['-c', shell], { allowFail: true, timeoutMs: 60_000, env: process.env });
    expect(res.stderr).toBe('');
    const id = demoId(res.stdout);
    expect(lines(res.stdout)).toHaveLength(1);
    expect(leftovers(id)).toEqual([]);
  });

  root.it('demo interrupted by SIGINT mid-measurement: exit 130, one line, namespaces and processes gone', async () => {
    let pid = 0;
    let signalled = false;
    let id = '';
    let inodes = new Set<string>();
    const running = cli(['demo', '--seconds', '20'], { timeoutMs: 60_000, onSpawn: (p) => (pid = p) });
    try {
      // wait until its iperf3 client (a child of the demo) runs: the traffic is on
      let client: number | undefined;
      for (let i = 0; i < 400 && client === undefined; i++) {
        await sleep(25);
        client = childrenOf(pid).find((c) => comm(c) === 'iperf3' && cmdline(c).includes('-c'));
      }
      expect(client).toBeDefined();
      // the client runs in side a: find the demo's namespaces by that namespace's inode
      const inode = /^net:\[(\d+)\]$/.exec(readlinkSync(`/proc/${client}/ns/net`))?.[1];
      const a = readdirSync('/run/netns').find((n) => /^nqdemo-[0-9a-f]{4}-a$/.test(n) && String(statSync(`/run/netns/${n}`).ino) === inode);
      expect(a).toBeDefined();
      id = a!.slice('nqdemo-'.length, -2);
      inodes = new Set([inode!, String(statSync(`/run/netns/nqdemo-${id}-b`).ino)]);
      expect(processesIn(inodes).length).toBeGreaterThanOrEqual(2); // the client in a, the server in b
      await sleep(500);
      signalled = true;
      process.kill(pid, 'SIGINT');
    } finally {
      // a failed check above must not leave the demo running (and its namespaces) behind it
      if (!signalled) {
        process.kill(pid, 'SIGINT');
        await running;
      }
    }
    const res = await running;
    expect(res.code).toBe(130);
    expect(lines(res.stderr)).toEqual([`netqos: demo interrupted by SIGINT: removing nqdemo-${id}-a and nqdemo-${id}-b`]);
    expect(leftovers(id)).toEqual([]);
    expect(processesIn(inodes)).toEqual([]);
  });
});
