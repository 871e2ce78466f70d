/**
 * `npm run bench -- --quick` restricted to one case (veth, egress, 10M: netqos and the CNI
 * plugin with both bursts, TCP + latency + UDP) with 3 setup-cost rounds and N = 1, run the way
 * a user runs it (node bench/run.mjs). Checks the report has every column, the numbers are sane
 * (non-zero, in the units the headers say) and nothing of the run is left behind.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect } from 'vitest';
import type { BenchData } from '../../bench/lib/report.js';
import { SUMMARY_HEAD } from '../../bench/lib/report.js';
import { requireRoot } from '../support/fixtures.js';

const root = requireRoot(['ip', 'tc', 'nsenter', 'iperf3', 'busybox']);

const plainEnv = (): NodeJS.ProcessEnv =>
  Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VITEST') && k !== 'TEST' && k !== 'NODE_ENV'));

const benchNamespaces = (): string[] =>
  spawnSync('/usr/sbin/ip', ['netns', 'list'], { encoding: 'utf8' })
    .stdout.split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith('nqt-b-'));

root.describe('bench --quick, one case', () => {
  let out: string;
  let data: BenchData;
  let md: string;
  let stdout: string;
  let code: number | null;
  let before: string[];

  beforeAll(() => {
    before = benchNamespaces();
    out = mkdtempSync(join(tmpdir(), 'nqt-bench-smoke-'));
    const r = spawnSync(
      process.execPath,
      ['bench/run.mjs', 'bench/bench.ts', '--quick', '--only', '*:veth:egress:10M', '--cost-runs', '3', '--scale', '1', '--out', out],
      // as a user runs it: without vitest's variables (test/support/fixtures.ts imports vitest when VITEST is set)
      { cwd: fileURLToPath(new URL('../..', import.meta.url)), encoding: 'utf8', timeout: 170_000, env: plainEnv() },
    );
    code = r.status;
    stdout = r.stdout + r.stderr;
    const files = readdirSync(out);
    const json = files.find((f) => f.endsWith('.json'));
    const mdFile = files.find((f) => f.endsWith('.md'));
    if (!json || !mdFile) throw new Error(`the bench wrote no result (exit ${code}):\n${stdout.slice(-2000)}`);
    data = JSON.parse(readFileSync(join(out, json), 'utf8')) as BenchData;
    md = readFileSync(join(out, mdFile), 'utf8');
  }, 180_000);

  afterAll(() => {
    if (out) rmSync(out, { recursive: true, force: true });
  });

  root.it('exits 0, prints the summary and where the results are', () => {
    expect(code, stdout.slice(-2000)).toBe(0);
    const head = stdout.split('\n').find((l) => l.startsWith('device '));
    expect(head, 'the summary table\'s header').toBeDefined();
    let at = 0;
    for (const h of SUMMARY_HEAD) {
      const i = head!.indexOf(h, at);
      expect(i, h).toBeGreaterThanOrEqual(at);
      at = i + h.length;
    }
    expect(stdout).toMatch(/results: .*\.json/);
    expect(stdout).toMatch(/targets \(netqos\): \d+ of \d+ hold/);
  });

  root.it('ran netqos and both CNI variants on the one case, three kinds each, every run ok', () => {
    expect(data.rows.map((r) => `${r.system} ${r.kind} ${r.status}`).sort()).toEqual(
      ['cni-containerd', 'cni-tuned', 'netqos'].flatMap((s) => ['rtt', 'tcp', 'udp'].map((k) => `${s} ${k} ok`)).sort(),
    );
    for (const r of data.rows) expect([r.device, r.direction, r.limitBps]).toEqual(['veth', 'egress', 10e6]);
  });

  root.it('the report has every summary column, filled in for every system', () => {
    expect(md).toContain(`| ${SUMMARY_HEAD.join(' | ')} |`);
    const lines = md.split('\n').filter((l) => /^\| veth \| egress \| 10M \|/.test(l));
    expect(lines).toHaveLength(3);
    for (const l of lines) {
      const cells = l.split('|').slice(1, -1).map((c) => c.trim());
      expect(cells).toHaveLength(SUMMARY_HEAD.length);
      for (const c of cells) expect(c, l).not.toBe('');
    }
    for (const section of ['## Targets (issue 3), netqos', '## Setup cost, one target at a time', '## N targets at once', '## Charts']) expect(md).toContain(section);
    expect(md).toMatch(/Load average \(1, 5, 15 min\) at start [\d.]+, [\d.]+, [\d.]+, at end [\d.]+/);
  });

  root.it('the numbers are sane and in the right units', () => {
    const nq = (kind: string) => data.rows.find((r) => r.system === 'netqos' && r.kind === kind)!.result!;
    const tcp = nq('tcp');
    // bit/s, near the limit: an L2 rate 10 % off or in the wrong unit fails here
    expect(tcp.l2.steadyBps).toBeGreaterThan(9e6);
    expect(tcp.l2.steadyBps).toBeLessThan(11e6);
    expect(tcp.goodputSteadyBps / tcp.l2.steadyBps).toBeGreaterThan(0.9);
    expect(tcp.goodputSteadyBps / tcp.l2.steadyBps).toBeLessThan(1);
    expect(tcp.l2.cov250).toBeGreaterThan(0);
    expect(tcp.l2.cov250).toBeLessThan(1);
    expect(tcp.perSecondBps.length).toBeGreaterThanOrEqual(5);
    const rtt = nq('rtt').rtt!;
    expect(rtt.sent).toBeGreaterThanOrEqual(50); // every probe of the quick run (5 s) went out
    expect(rtt.p50).toBeGreaterThan(0.01); // ms, not s or µs
    expect(rtt.p50).toBeLessThan(1000);
    const udp = nq('udp');
    expect(udp.udpOfferedBps).toBeGreaterThan(15e6);
    expect(udp.udpReceivedBps).toBeGreaterThan(5e6);
    expect(udp.udpReceivedBps).toBeLessThan(11e6);
    // containerd's 2^32-1 bit burst lets the first second through unshaped: the comparison the bench exists for
    const k8s = data.rows.find((r) => r.system === 'cni-containerd' && r.kind === 'tcp')!.result!;
    expect(k8s.l2.firstSecondError).toBeGreaterThan(1);
  });

  root.it('setup cost and N = 1 have positive times in ms, no failures, no leftovers', () => {
    const c = data.cost!;
    for (const s of [c.netqosApplyMs, c.netqosRemoveMs, c.cniAddMs, c.cniDelMs]) {
      expect(s.n).toBe(3);
      expect(s.median).toBeGreaterThan(0.1);
      expect(s.median).toBeLessThan(5000);
    }
    expect(data.scale!.map((s) => [s.system, s.n, s.applyFailures, s.removeFailures, s.leftovers])).toEqual([
      ['netqos', 1, 0, 0, 0],
      ['cni-containerd', 1, 0, 0, 0],
    ]);
  });

  root.it('machine, load and charts are recorded', () => {
    expect(data.machine.cpus).toBeGreaterThan(0);
    expect(data.machine.loadStart).toHaveLength(3);
    expect(data.machine.loadEnd).toHaveLength(3);
    expect(data.machine.congestionControl).toMatch(/^cubic/);
    const stamp = readdirSync(out).find((f) => !f.includes('.'))!;
    const charts = readdirSync(join(out, stamp));
    expect(charts.sort()).toEqual(['rate-veth-egress.svg', 'rtt-veth-egress.svg']);
    for (const f of charts) expect(readFileSync(join(out, stamp, f), 'utf8')).toMatch(/^<svg [^>]*>[\s\S]*<polyline [\s\S]*<\/svg>\n$/);
  });

  root.it('leaves no namespace of its own behind', () => {
    expect(benchNamespaces().filter((n) => !before.includes(n))).toEqual([]);
  });
});
