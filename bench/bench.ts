/**
 * `sudo npm run bench`: netqos against the CNI bandwidth plugin (containerd's burst and a tuned
 * one) and unshaped, in one run, interleaved, on veth and macvlan containers, at 1M..10G, both
 * directions: steady L2 accuracy, first second, smoothness, RTT under load, UDP flood; then the
 * setup cost per target and for N targets at once. Writes bench/results/<stamp>.json, a
 * Markdown report and SVG charts (bench/results/<stamp>/), and prints the summary.
 *
 *   node bench/run.mjs bench/bench.ts [--quick] [--only netqos:veth:egress:10M] ...   (--help)
 *
 * Everything lives in nqt-b… namespaces of its own and is removed at the end and on Ctrl-C.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { cleanupAll, programPath } from '../test/support/fixtures.js';
import { privateTempDir, repoRoot, requireRootUser } from './common.js';
import { parseArgs, type Options } from './lib/args.js';
import { CNI_PLUGIN } from './lib/cni.js';
import { perTargetCost, scale } from './lib/cost.js';
import { TCP_CC } from './lib/iperf.js';
import { measure, type Kind, type RunSpec } from './lib/measure.js';
import { runTracked } from './lib/proc.js';
import { limitText, markdown, mbit, ms, pct, SUMMARY_HEAD, summaryRows, textTable, verdicts, type BenchData, type CaseRow } from './lib/report.js';
import { COLORS, rateChart, rttChart, type Panel } from './lib/svg.js';
import { applySystem, Unsupported, type Direction, type SystemId } from './lib/systems.js';
import { addContainer, buildCore, type Container, type Device, type Topology } from './lib/topo.js';

const out = (s: string): void => {
  process.stdout.write(`${s}\n`);
};
const load1 = (): number => Math.round(loadavg()[0]! * 100) / 100;

/** Limits up to this run their systems side by side (they use little CPU); above, one at a time. */
const PARALLEL_UP_TO = 100e6;

interface Job {
  system: SystemId;
  container: Container;
  direction: Direction;
  kind: Kind;
  limitBps: number | null;
  seconds: number;
  repeat: number;
}

let portCounter = 0;
const nextPort = (): number => 5301 + (portCounter++ % 400);

async function runJob(topo: Topology, j: Job): Promise<CaseRow> {
  const row: CaseRow = {
    repeat: j.repeat,
    system: j.system,
    device: j.container.device,
    direction: j.direction,
    kind: j.kind,
    limitBps: j.limitBps,
    status: 'ok',
    seconds: j.seconds,
    loadBefore: load1(),
  };
  const limit = j.limitBps ?? 10e9;
  let shaping;
  try {
    shaping = await applySystem(j.system, topo, j.container, j.direction, limit);
  } catch (e) {
    row.status = e instanceof Unsupported ? 'unsupported' : 'failed';
    row.error = (e as Error).message;
    return row;
  }
  row.detail = shaping.detail;
  try {
    const spec: RunSpec = { kind: j.kind, direction: j.direction, limitBps: limit, seconds: j.seconds, port: nextPort() };
    row.result = await measure(topo, j.container, shaping.counter, spec);
  } catch (e) {
    row.status = 'failed';
    row.error = (e as Error).message;
  } finally {
    try {
      await shaping.remove();
    } catch (e) {
      row.status = 'failed';
      row.error = `${row.error ? `${row.error}; ` : ''}removal: ${(e as Error).message}`;
    }
  }
  return row;
}

function progress(r: CaseRow): string {
  const head = `  ${r.system.padEnd(14)} ${r.device.padEnd(7)} ${r.direction.padEnd(7)} ${limitText(r.limitBps).padStart(4)} ${r.kind.padEnd(3)}`;
  if (r.status !== 'ok' || !r.result) return `${head}  ${r.status === 'unsupported' ? 'not supported' : 'FAILED'}: ${r.error}`;
  const x = r.result;
  const lim = r.limitBps;
  const parts = [`L2 ${mbit(x.l2.steadyBps)} Mbit/s${lim ? ` (${pct(x.l2.steadyError)})` : ''}`, `1st s ${lim ? pct(x.l2.firstSecondError, 1) : mbit(x.l2.firstSecondBps)}`];
  parts.push(`goodput ${mbit(x.goodputSteadyBps)}`);
  if (x.iperfError) parts.push(`iperf3 gave no report: ${x.iperfError}`);
  if (x.rtt) parts.push(`RTT p50/p99 ${ms(x.rtt.p50)}/${ms(x.rtt.p99)} ms (${x.rtt.sent - x.rtt.received} lost)`);
  if (x.udpReceivedBps !== undefined) parts.push(`UDP offered ${mbit(x.udpOfferedBps!)} received ${mbit(x.udpReceivedBps)}`);
  if (x.l2.cov250 !== null && lim !== null && lim <= 10e6) parts.push(`CoV ${(x.l2.cov250 * 100).toFixed(1)} %`);
  return `${head}  ${parts.join(', ')}  [load ${r.loadBefore}]`;
}

async function facts(): Promise<Pick<BenchData['machine'], 'congestionControl' | 'cniPlugin' | 'iperf3'>> {
  let cc = 'unknown';
  try {
    cc = readFileSync('/proc/sys/net/ipv4/tcp_congestion_control', 'utf8').trim();
  } catch {
    // leave unknown
  }
  cc = `${TCP_CC} on every iperf3 socket (iperf3 -C; the namespaces' default, inherited from the host, is ${cc})`;
  const dpkg = await runTracked('/usr/bin/dpkg-query', ['-W', '-f', '${Version}', 'containernetworking-plugins'], { timeoutMs: 5000, comm: 'dpkg-query' }).catch(() => undefined);
  const ip3 = await runTracked('/usr/bin/iperf3', ['--version'], { timeoutMs: 5000, comm: 'iperf3' }).catch(() => undefined);
  return {
    congestionControl: cc,
    cniPlugin: `${CNI_PLUGIN} (containernetworking-plugins ${dpkg?.stdout.trim() || 'unknown version'})`,
    iperf3: ip3?.stdout.split('\n')[0]?.trim() ?? 'iperf3',
  };
}

function charts(d: BenchData, dir: string, stamp: string): { title: string; file: string }[] {
  const files: { title: string; file: string }[] = [];
  const ok = d.rows.filter((r) => r.status === 'ok' && r.result && r.repeat === 0 && r.limitBps !== null);
  const devices = [...new Set(ok.map((r) => r.device))];
  for (const device of devices) {
    for (const direction of ['egress', 'ingress'] as const) {
      const limits = [...new Set(ok.filter((r) => r.device === device && r.direction === direction).map((r) => r.limitBps!))].sort((a, b) => a - b);
      if (limits.length === 0) continue;
      const ratePanels: Panel[] = [];
      const rttPanels: Panel[] = [];
      for (const lim of limits) {
        const at = ok.filter((r) => r.device === device && r.direction === direction && r.limitBps === lim);
        const tcp = at.filter((r) => r.kind === 'tcp');
        if (tcp.length) ratePanels.push({ title: `${limitText(lim)} (TCP, L2 / limit)`, lines: tcp.map((r) => ({ label: r.system, color: COLORS[r.system]!, values: r.result!.perSecondBps.map((v) => v / lim) })) });
        const rtt = at.filter((r) => r.kind === 'rtt' && r.result!.rtt);
        if (rtt.length) rttPanels.push({ title: `${limitText(lim)} (ping under load)`, lines: rtt.map((r) => ({ label: r.system, color: COLORS[r.system]!, values: r.result!.rtt!.samplesMs })) });
      }
      if (ratePanels.length) {
        const file = `rate-${device}-${direction}.svg`;
        writeFileSync(join(dir, file), rateChart(`${device} ${direction}: per-second L2 rate / limit`, ratePanels));
        files.push({ title: `${device} ${direction}: rate over time`, file: `${stamp}/${file}` });
      }
      if (rttPanels.length) {
        const file = `rtt-${device}-${direction}.svg`;
        writeFileSync(join(dir, file), rttChart(`${device} ${direction}: RTT under load (CDF)`, rttPanels));
        files.push({ title: `${device} ${direction}: RTT distribution under load`, file: `${stamp}/${file}` });
      }
    }
  }
  return files;
}

async function main(o: Options, argv: string[]): Promise<boolean> {
  requireRootUser();
  for (const f of [CNI_PLUGIN, '/usr/bin/iperf3', '/usr/sbin/tc', '/usr/sbin/ip', '/usr/bin/nsenter', '/bin/bash']) {
    if (!existsSync(f)) throw new Error(`${f} is missing: apt-get install containernetworking-plugins iperf3 iproute2 util-linux (test/prepare.sh installs them)`);
  }
  programPath('busybox'); // throws naming the package when missing
  const tmp = privateTempDir('bench'); // its signal handler before any namespace exists
  const t0 = performance.now();
  const loadStart = loadavg().map((x) => Math.round(x * 100) / 100);
  const c = cpus();
  out(`netqos bench${o.quick ? ' (quick)' : ''}: ${c.length} CPUs, kernel ${release()}, load ${loadStart.join(', ')}`);

  const topo = await buildCore();
  const containers = new Map<string, Container>();
  const key = (s: SystemId, d: Device): string => `${s}/${d}`;
  for (const d of o.kinds.length > 0 ? o.devices : []) {
    for (const s of [...o.systems, ...(o.ceiling ? (['unshaped'] as const) : [])]) {
      containers.set(key(s, d), await addContainer(topo, d, `${s === 'cni-containerd' ? 'ck' : s === 'cni-tuned' ? 'ct' : s === 'netqos' ? 'nq' : 'un'}-${d === 'veth' ? 'v' : 'm'}`));
    }
  }
  out(`namespaces: node ${topo.node}, remote ${topo.remote}, ${containers.size} containers (each with a sender behind it)`);

  const rows: CaseRow[] = [];
  const seconds = (kind: Kind, lim: number): number => (kind === 'tcp' ? o.tcpSeconds(lim) : kind === 'rtt' ? o.rttSeconds(lim) : o.udpSeconds);
  for (let rep = 0; rep < o.repeat; rep++) {
    if (o.repeat > 1) out(`repeat ${rep + 1} of ${o.repeat}`);
    if (o.ceiling) {
      out('ceiling (unshaped):');
      for (const d of o.devices)
        for (const dir of o.directions)
          for (const kind of o.kinds.filter((k) => o.ceilingKinds.includes(k))) {
            const r = await runJob(topo, { system: 'unshaped', container: containers.get(key('unshaped', d))!, direction: dir, kind, limitBps: null, seconds: seconds(kind, 10e9), repeat: rep });
            rows.push(r);
            out(progress(r));
          }
    }
    let turn = 0;
    for (const lim of o.kinds.length > 0 ? o.limits : []) {
      out(`limit ${limitText(lim)}:`);
      for (const kind of o.kinds.filter((k) => k !== 'udp' || lim <= o.udpUpTo)) {
        for (const dir of o.directions) {
          const jobs: Job[] = [];
          for (const d of o.devices)
            for (const s of o.systems) jobs.push({ system: s, container: containers.get(key(s, d))!, direction: dir, kind, limitBps: lim, seconds: seconds(kind, lim), repeat: rep });
          if (lim <= PARALLEL_UP_TO) {
            const done = await Promise.all(jobs.map((j) => runJob(topo, j)));
            for (const r of done) {
              rows.push(r);
              out(progress(r));
            }
          } else {
            // one at a time, the order rotated from case to case so no system always goes first
            const k = turn++ % jobs.length;
            for (const j of [...jobs.slice(k), ...jobs.slice(0, k)]) {
              const r = await runJob(topo, j);
              rows.push(r);
              out(progress(r));
            }
          }
        }
      }
    }
  }

  let cost;
  let scaleRes;
  if (o.costRuns > 0) {
    out(`setup cost: ${o.costRuns} rounds of netqos apply/remove and CNI ADD/DEL, interleaved`);
    cost = await perTargetCost(o.costRuns, tmp);
    out(
      `  netqos apply p50 ${cost.netqosApplyMs.median.toFixed(2)} ms (p95 ${cost.netqosApplyMs.p95.toFixed(2)}), remove p50 ${cost.netqosRemoveMs.median.toFixed(2)} ms; ` +
        `CNI ADD p50 ${cost.cniAddMs.median.toFixed(2)} ms (p95 ${cost.cniAddMs.p95.toFixed(2)}), DEL p50 ${cost.cniDelMs.median.toFixed(2)} ms`,
    );
  }
  if (o.scale.length > 0) {
    out(`N targets at once: ${o.scale.join(', ')}`);
    scaleRes = await scale(o.scale, tmp, out);
  }
  await cleanupAll();

  const root = repoRoot();
  const hookDir = join(root, 'bench', 'results');
  let hookTiming: BenchData['hookTiming'] = null;
  try {
    const { readdirSync } = await import('node:fs');
    const latest = readdirSync(hookDir).filter((f) => /^hook-timing-.*\.json$/.test(f)).sort().pop();
    if (latest) hookTiming = { file: `bench/results/${latest}`, summary: null };
  } catch {
    // no results yet
  }
  const data: BenchData = {
    kind: 'bench',
    date: new Date().toISOString(),
    argv,
    quick: o.quick,
    durationS: (performance.now() - t0) / 1000,
    machine: {
      kernel: release(),
      node: process.version,
      cpus: c.length,
      cpuModel: c[0]?.model ?? 'unknown',
      memGiB: Math.round(totalmem() / 2 ** 30),
      loadStart,
      loadEnd: loadavg().map((x) => Math.round(x * 100) / 100),
      ...(await facts()),
    },
    rows,
    ...(cost ? { cost } : {}),
    ...(scaleRes ? { scale: scaleRes } : {}),
    hookTiming,
  };
  const dir = resolve(o.outDir ?? join(root, 'bench', 'results'));
  const stamp = data.date.replace(/[:.]/g, '-');
  mkdirSync(join(dir, stamp), { recursive: true });
  const jsonFile = join(dir, `${stamp}.json`);
  writeFileSync(jsonFile, `${JSON.stringify(data, null, 1)}\n`);
  const chartFiles = charts(data, join(dir, stamp), stamp);
  const report = markdown(data, { json: relative(dir, jsonFile), charts: chartFiles });
  const mdFile = join(dir, `${stamp}.md`);
  writeFileSync(mdFile, report);

  out('');
  out(textTable(SUMMARY_HEAD, summaryRows(rows), 4));
  const v = verdicts(data);
  out('');
  const tested = v.filter((x) => !x.untested);
  out(`targets (netqos): ${tested.filter((x) => x.pass).length} of ${tested.length} hold${v.length > tested.length ? `, ${v.length - tested.length} untested` : ''}`);
  for (const x of tested.filter((y) => !y.pass)) out(`  MISSED ${x.target}, ${x.scope}: ${x.measured} (bound ${x.bound}${x.by ? `, by ${x.by}` : ''})`);
  for (const x of v.filter((y) => y.untested)) out(`  UNTESTED ${x.target}, ${x.scope}: ${x.untested}`);
  out(`load average at end: ${data.machine.loadEnd.join(', ')} (start ${loadStart.join(', ')})`);
  out(`results: ${jsonFile}`);
  out(`report: ${mdFile}`);
  return rows.every((r) => r.status !== 'failed');
}

let ok = false;
try {
  const argv = process.argv.slice(2);
  ok = await main(parseArgs(argv), argv);
} catch (e) {
  process.stderr.write(`bench: ${(e as Error).stack ?? String(e)}\n`);
} finally {
  try {
    await cleanupAll();
  } catch (e) {
    ok = false;
    process.stderr.write(`bench: cleanup: ${(e as Error).message}\n`);
  }
}
process.exitCode = ok ? 0 : 1;
