/**
 * NRI plugin costs, measured on the bundled daemon (dist-like esbuild bundle of
 * src/nri/main.ts, external mode) against the fake containerd 2.1.9 runtime
 * (test/support/nri-fake-runtime.ts) over a real unix socket, with real pod namespaces:
 *
 * - RunPodSandbox handling time: from the runtime sending the request to it reading the reply
 *   (what containerd waits for), for `--pods` pods (default 100), each a fresh namespace with a
 *   veth whose other end is in a shared "node" namespace of ours; annotations 10M egress, 20M
 *   ingress. Interleaved pod by pod with the CNI bandwidth plugin's ADD (Debian 1.1.1,
 *   /usr/lib/cni/bandwidth, run inside our "node" namespace with containerd's burst), which
 *   does the comparable work for the same pod from the host side: the target is netqos p50 <=
 *   1.5 x CNI ADD p50. The CNI time includes one nsenter exec (about 2 ms here) that a runtime
 *   calling the plugin from the host namespace would not pay; both numbers are reported as
 *   measured.
 * - daemon RSS (VmRSS of the daemon process) idle, after the timed pods, and with `--tracked`
 *   pods (default 500) shaped and tracked; target <= 80 MB.
 * - StopPodSandbox handling time for every pod, at the end.
 *
 *   node bench/run.mjs bench/nri-handling.ts [--pods 100] [--tracked 500] [--warmup 3]
 *
 * Everything it creates is nqt-…, in a private temp dir, or a process it started; all removed at
 * the end (and on SIGINT / SIGTERM). Results: a table and bench/results/nri-handling-<time>.json.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { toolPath } from '../src/kernel/tools.js';
import { cleanupAll, makeNetns, nsPath, registerPid, vethPair } from '../test/support/fixtures.js';
import { FakeRuntime, type FakePod, type PluginConnection } from '../test/support/nri-fake-runtime.js';
import { fixed, hex, machine, privateTempDir, requireRootUser, stats, table, writeResult } from './common.js';

function intArg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return dflt;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < 0 || v > 2000) throw new Error(`--${name} wants an integer 0..2000`);
  return v;
}

const PODS = intArg('pods', 100);
const TRACKED = Math.max(PODS, intArg('tracked', 500));
const WARMUP = intArg('warmup', 3);
const BW = { 'kubernetes.io/egress-bandwidth': '10M', 'kubernetes.io/ingress-bandwidth': '20M' };
const CNI_BANDWIDTH = '/usr/lib/cni/bandwidth';
/** containerd's burst for the CNI bandwidth plugin: 2^32 - 1 bits */
const CONTAINERD_BURST = 4294967295;

/** nearest-rank percentile */
function pct(samples: readonly number[], p: number): number {
  const s = [...samples].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!;
}

function rssKiB(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kib('VmRSS'), hwm: kib('VmHWM') };
}

interface PodNs {
  pod: FakePod;
  ns: string;
  hostDev: string;
}

async function makePod(i: number, nodeNs: string): Promise<PodNs> {
  const ns = await makeNetns(`nrib-${i}`);
  const hostDev = `nqv${i}`;
  await vethPair(ns, nodeNs, { devA: 'eth0', devB: hostDev });
  const id = `${hex(4)}${i.toString(16).padStart(8, '0')}${'0'.repeat(52)}`;
  return { ns, hostDev, pod: { id, name: `bench-${i}`, namespace: 'nqt-bench', annotations: BW, netnsPath: nsPath(ns), pid: 1, ips: [] } };
}

/** spawn -> exit of the CNI bandwidth plugin, run inside the node namespace */
function cni(command: 'ADD' | 'DEL', p: PodNs, nodeNs: string): Promise<number> {
  const conf = {
    cniVersion: '0.4.0',
    name: 'nqt-bench',
    type: 'bandwidth',
    ingressRate: 20_000_000,
    ingressBurst: CONTAINERD_BURST,
    egressRate: 10_000_000,
    egressBurst: CONTAINERD_BURST,
    prevResult: { cniVersion: '0.4.0', interfaces: [{ name: p.hostDev }, { name: 'eth0', sandbox: nsPath(p.ns) }], ips: [] },
  };
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(toolPath('nsenter'), [`--net=${nsPath(nodeNs)}`, CNI_BANDWIDTH], {
      env: { CNI_COMMAND: command, CNI_CONTAINERID: p.pod.id, CNI_NETNS: nsPath(p.ns), CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (code !== 0) reject(new Error(`CNI bandwidth ${command} for ${p.ns} exited ${code}: ${out.trim()}`));
      else resolve(ms);
    });
    child.stdin.end(JSON.stringify(conf));
  });
}

async function timed<T>(f: () => Promise<T>): Promise<[T, number]> {
  const t0 = process.hrtime.bigint();
  const r = await f();
  return [r, Number(process.hrtime.bigint() - t0) / 1e6];
}

async function main(): Promise<void> {
  requireRootUser();
  const dir = privateTempDir('nri');
  const m = machine();
  const bundle = join(dir, 'netqos-nri.cjs');
  // the options of packaging/build.mjs; esbuild's CLI, since its JS API cannot be bundled into this script
  const b = spawnSync('node_modules/esbuild/bin/esbuild', ['src/nri/main.ts', '--bundle', '--platform=node', '--target=node18', '--format=cjs', '--minify', `--outfile=${bundle}`, '--log-level=warning'], { stdio: 'inherit' });
  if (b.status !== 0) throw new Error('esbuild failed');
  const config = join(dir, 'config.json');
  writeFileSync(config, JSON.stringify({ log: { file: join(dir, 'nri.log'), level: 'info' } }));
  const runtime = new FakeRuntime({ profile: '2.1' });
  let daemon: ChildProcess | undefined;
  try {
    await runtime.listen();
    const next = runtime.nextConnection(10_000);
    daemon = spawn(process.execPath, [bundle, '--socket', runtime.socketPath, '--lock', join(dir, 'nri.lock'), '--config', config], { stdio: 'inherit' });
    registerPid(daemon.pid!, 'node');
    const conn: PluginConnection = await next;
    await conn.ready;
    const rssIdle = rssKiB(daemon.pid!);
    const hasCni = (() => {
      try {
        readFileSync(CNI_BANDWIDTH);
        return true;
      } catch {
        return false;
      }
    })();

    const nodeNs = await makeNetns('nrib-node');
    process.stderr.write(`creating ${TRACKED + WARMUP} pod namespaces...\n`);
    const pods: PodNs[] = [];
    for (let i = 0; i < TRACKED + WARMUP; i++) pods.push(await makePod(i, nodeNs));

    const run = async (p: PodNs): Promise<number> => {
      const [r, ms] = await timed(() => conn.runPodSandbox(p.pod));
      if (!r.ok) throw new Error(`RunPodSandbox ${p.ns}: ${JSON.stringify(r)}`);
      return ms;
    };
    for (const p of pods.slice(0, WARMUP)) {
      await run(p);
      if (hasCni) await cni('ADD', p, nodeNs);
    }
    const ours: number[] = [];
    const cniAdd: number[] = [];
    const timedPods = pods.slice(WARMUP, WARMUP + PODS);
    for (const [i, p] of timedPods.entries()) {
      // alternate who goes first, so neither always runs right after the other
      if (i % 2 === 0) ours.push(await run(p));
      if (hasCni) cniAdd.push(await cni('ADD', p, nodeNs));
      if (i % 2 === 1) ours.push(await run(p));
    }
    const rssTimed = rssKiB(daemon.pid!);
    for (const p of pods.slice(WARMUP + PODS)) await run(p);
    await new Promise((r) => setTimeout(r, 500));
    const rssTracked = rssKiB(daemon.pid!);
    const tracked = readFileSync(join(dir, 'nri.log'), 'utf8').split('\n').filter((l) => l.includes('"msg":"shaped"')).length;

    const cniDel: number[] = [];
    if (hasCni) for (const p of pods.slice(0, WARMUP + PODS)) cniDel.push(await cni('DEL', p, nodeNs));
    const stops: number[] = [];
    for (const p of pods) {
      const [r, ms] = await timed(() => conn.stopPodSandbox(p.pod));
      if (!r.ok) throw new Error(`StopPodSandbox ${p.ns}: ${JSON.stringify(r)}`);
      stops.push(ms);
      await conn.removePodSandbox(p.pod);
    }

    const row = (name: string, s: readonly number[]): string[] => {
      const st = stats(s);
      return [name, String(st.n), fixed(st.median, 2), fixed(pct(s, 0.99), 2), fixed(st.min, 2), fixed(st.max, 2)];
    };
    const rows = [row('netqos RunPodSandbox (reply received)', ours), row('netqos StopPodSandbox', stops)];
    if (hasCni) rows.push(row('CNI bandwidth ADD (nsenter + plugin)', cniAdd), row('CNI bandwidth DEL (nsenter + plugin)', cniDel));
    process.stdout.write(`\n${table(['ms', 'n', 'p50', 'p99', 'min', 'max'], rows)}\n`);
    const ratio = hasCni ? stats(ours).median / stats(cniAdd).median : undefined;
    if (ratio !== undefined) process.stdout.write(`\nnetqos p50 / CNI ADD p50 = ${ratio.toFixed(2)} (target <= 1.5)\n`);
    const mb = (k: number): string => `${(k / 1024).toFixed(1)} MB`;
    process.stdout.write(
      `daemon RSS: idle ${mb(rssIdle.rss)}, after ${PODS + WARMUP} pods ${mb(rssTimed.rss)}, with ${tracked} pods tracked ${mb(rssTracked.rss)} (peak ${mb(rssTracked.hwm)}; target <= 80 MB)\n`,
    );
    const file = writeResult('nri-handling', {
      machine: { ...m, loadEnd: (await import('node:os')).loadavg() },
      pods: PODS,
      tracked,
      runPodSandboxMs: ours,
      stopPodSandboxMs: stops,
      cniAddMs: cniAdd,
      cniDelMs: cniDel,
      p50: { ours: stats(ours).median, cniAdd: hasCni ? stats(cniAdd).median : null, ratio },
      p99: { ours: pct(ours, 0.99), cniAdd: hasCni ? pct(cniAdd, 0.99) : null },
      rssKiB: { idle: rssIdle, afterTimed: rssTimed, tracked: rssTracked },
    });
    process.stdout.write(`results: ${file}\n`);
  } finally {
    if (daemon && daemon.exitCode === null) daemon.kill('SIGTERM');
    await runtime.dispose();
    await cleanupAll();
  }
}

await main();
