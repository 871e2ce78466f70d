/**
 * From the measured rows to the summary table, the targets of issue 3 (pass / fail, by how
 * much) and the Markdown report. Pure: the bench's data in, text out.
 */
import type { Machine } from '../common.js';
import type { PerTargetCost, ScaleResult } from './cost.js';
import type { Kind, RunResult } from './measure.js';
import type { Direction, SystemId } from './systems.js';
import { SYSTEM_LABEL, quantityText } from './systems.js';
import type { Device } from './topo.js';

export interface CaseRow {
  repeat: number;
  system: SystemId;
  device: Device;
  direction: Direction;
  kind: Kind;
  /** null for the unshaped ceiling */
  limitBps: number | null;
  status: 'ok' | 'failed' | 'unsupported';
  error?: string;
  detail?: string;
  seconds: number;
  loadBefore: number;
  result?: RunResult;
}

/** the machine (bench/common.ts) and what else decides the numbers */
export interface MachineInfo extends Machine {
  loadEnd: number[];
  congestionControl: string;
  cniPlugin: string;
  iperf3: string;
}

export interface BenchData {
  kind: 'bench';
  date: string;
  argv: string[];
  quick: boolean;
  durationS: number;
  machine: MachineInfo;
  rows: CaseRow[];
  cost?: PerTargetCost;
  scale?: ScaleResult[];
  hookTiming?: { file: string; summary: unknown } | null;
}

// ---------------------------------------------------------------------------------------------
// formatting

export const mbit = (bps: number): string => {
  if (!Number.isFinite(bps)) return 'n/a';
  const m = bps / 1e6;
  return m >= 100 ? m.toFixed(0) : m >= 10 ? m.toFixed(1) : m >= 1 ? m.toFixed(2) : m.toFixed(3);
};
export const pct = (rel: number, digits = 2): string => {
  const v = Number((rel * 100).toFixed(digits));
  return `${v >= 0 ? '+' : ''}${v.toFixed(digits)} %`;
};
export const ms = (v: number): string => (!Number.isFinite(v) ? 'lost' : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
export const limitText = (bps: number | null): string => (bps === null ? 'none' : quantityText(bps));

export function mdTable(head: readonly string[], rows: readonly (readonly string[])[], left = 1): string {
  const align = head.map((_, i) => (i < left ? '---' : '---:'));
  return [`| ${head.join(' | ')} |`, `| ${align.join(' | ')} |`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

export function textTable(head: readonly string[], rows: readonly (readonly string[])[], left = 1): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i < left ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

// ---------------------------------------------------------------------------------------------
// the summary: one line per system x device x direction x limit

export const SUMMARY_HEAD = [
  'device',
  'dir',
  'limit',
  'system',
  'L2 steady Mbit/s',
  'L2 error',
  '1st second',
  'goodput Mbit/s',
  'CoV 250ms',
  'RTT p50 ms',
  'RTT p99 ms',
  'goodput under load',
  'UDP recv/limit',
] as const;

const SHORT: Record<SystemId, string> = { netqos: 'netqos', 'cni-containerd': 'cni-k8s', 'cni-tuned': 'cni-tuned', unshaped: 'unshaped' };

interface Merged {
  device: Device;
  direction: Direction;
  limitBps: number | null;
  system: SystemId;
  tcp: CaseRow[];
  rtt: CaseRow[];
  udp: CaseRow[];
}

export function merge(rows: readonly CaseRow[]): Merged[] {
  const out = new Map<string, Merged>();
  for (const r of rows) {
    const key = `${r.device}|${r.direction}|${r.limitBps}|${r.system}`;
    let m = out.get(key);
    if (!m) {
      m = { device: r.device, direction: r.direction, limitBps: r.limitBps, system: r.system, tcp: [], rtt: [], udp: [] };
      out.set(key, m);
    }
    m[r.kind].push(r);
  }
  const order = (m: Merged): string =>
    [m.device === 'veth' ? 0 : 1, m.direction === 'egress' ? 0 : 1, String(m.limitBps ?? 0).padStart(14, '0'), SYSTEM_ORDER.indexOf(m.system)].join('|');
  return [...out.values()].sort((a, b) => order(a).localeCompare(order(b)));
}

const SYSTEM_ORDER: readonly SystemId[] = ['unshaped', 'netqos', 'cni-containerd', 'cni-tuned'];

/** "x" or "x (min..max)" over repeats */
function spread(all: number[], f: (v: number) => string): string {
  if (all.length === 0) return '';
  const values = all.filter((v) => !Number.isNaN(v));
  if (values.length === 0) return 'n/a';
  if (values.length === 1) return f(values[0]!);
  const s = [...values].sort((a, b) => a - b);
  return `${f(s[Math.floor(s.length / 2)]!)} (${f(s[0]!)}..${f(s[s.length - 1]!)})`;
}

function statusCell(rows: CaseRow[]): string | undefined {
  if (rows.length === 0) return '';
  if (rows.every((r) => r.status === 'unsupported')) return 'not supported';
  if (rows.every((r) => r.status !== 'ok')) return 'failed';
  return undefined;
}

export function summaryRows(rows: readonly CaseRow[]): string[][] {
  return merge(rows).map((m) => {
    const ok = (rs: CaseRow[]): RunResult[] => rs.filter((r) => r.status === 'ok' && r.result).map((r) => r.result!);
    const tcp = ok(m.tcp);
    const rtt = ok(m.rtt);
    const udp = ok(m.udp);
    const lim = m.limitBps;
    const tcpStatus = statusCell(m.tcp);
    const rttStatus = statusCell(m.rtt);
    const udpStatus = statusCell(m.udp);
    const cells = [m.device, m.direction, limitText(lim), SHORT[m.system]];
    if (tcpStatus !== undefined) cells.push(tcpStatus, '', '', '', '');
    else
      cells.push(
        spread(tcp.map((r) => r.l2.steadyBps), mbit),
        lim === null ? '' : spread(tcp.map((r) => r.l2.steadyError), (v) => pct(v)),
        lim === null ? mbit(tcp[0]!.l2.firstSecondBps) : spread(tcp.map((r) => r.l2.firstSecondError), (v) => pct(v, 1)),
        spread(tcp.map((r) => r.goodputSteadyBps), mbit),
        spread(tcp.filter((r) => r.l2.cov250 !== null).map((r) => r.l2.cov250!), (v) => `${(v * 100).toFixed(1)} %`),
      );
    if (rttStatus !== undefined) cells.push(rttStatus, '', '');
    else
      cells.push(
        spread(rtt.map((r) => r.rtt!.p50), ms),
        spread(rtt.map((r) => r.rtt!.p99), ms),
        lim === null ? spread(rtt.map((r) => r.goodputSteadyBps), mbit) : spread(rtt.map((r) => r.goodputSteadyBps / lim), (v) => `${(v * 100).toFixed(1)} %`),
      );
    if (udpStatus !== undefined) cells.push(udpStatus);
    else cells.push(lim === null ? '' : spread(udp.map((r) => r.udpReceivedBps! / lim), (v) => `${(v * 100).toFixed(1)} %`));
    return cells;
  });
}

// ---------------------------------------------------------------------------------------------
// targets (issue 3), for netqos

export interface Verdict {
  target: string;
  scope: string;
  measured: string;
  bound: string;
  pass: boolean;
  /** how far past the bound, in the bound's unit, when it fails */
  by?: string;
  /** the run could not test the target (why): neither held nor missed */
  untested?: string;
}

/**
 * Why a first second can read over +2 % whatever the shaper does: the bucket it starts with.
 * netqos's burst is never below two full frames (issue 2), 3028 bytes = 2.4 % of a second at 1M;
 * HTB then lets one more frame out. Read from what the run put in place (row.detail).
 */
function burstShare(r: CaseRow): string {
  const burst = /\bburst (\d+)B\b/.exec(r.detail ?? '')?.[1];
  if (burst === undefined || r.limitBps === null) return '';
  const share = Number(burst) / (r.limitBps / 8);
  return share > 0.02 ? `: the burst alone, ${burst} B (two frames, the least issue 2 allows), is ${(share * 100).toFixed(1)} % of a second at this rate` : '';
}

const caseName = (r: CaseRow): string => `${r.device} ${r.direction} ${limitText(r.limitBps)}${r.repeat > 0 ? ` #${r.repeat + 1}` : ''}`;

export function verdicts(data: Pick<BenchData, 'rows' | 'cost' | 'scale'>): Verdict[] {
  const out: Verdict[] = [];
  const nq = data.rows.filter((r) => r.system === 'netqos' && r.limitBps !== null);
  const failed = (r: CaseRow, target: string): void => {
    out.push({ target, scope: caseName(r), measured: r.status === 'unsupported' ? 'not supported' : `failed: ${r.error ?? ''}`, bound: '', pass: false });
  };
  for (const r of nq.filter((x) => x.kind === 'tcp')) {
    const lim = r.limitBps!;
    if (!r.result) {
      failed(r, 'steady L2 error');
      continue;
    }
    const bound = lim <= 1e6 ? 0.01 : 0.005;
    const e = r.result.l2.steadyError;
    const windowS = (r.result.l2.steadyToT - r.result.l2.steadyFromT) / 1000;
    const backlogged = r.result.l2.backloggedShare;
    // short of the limit with an empty queue most of the time: the sender did not keep up (a
    // shaper that holds traffic back has a backlog), so the run says nothing about the shaper
    const senderBound = e < -bound && backlogged < 0.9;
    out.push({
      target: 'steady L2 error',
      scope: `${caseName(r)} (${windowS.toFixed(1)} s window)`,
      measured: pct(e),
      bound: `±${(bound * 100).toFixed(1)} %`,
      pass: Math.abs(e) <= bound,
      ...(senderBound
        ? { untested: `sender-bound: the shaper held a backlog in only ${(backlogged * 100).toFixed(0)} % of the samples` }
        : Math.abs(e) > bound
          ? { by: `${((Math.abs(e) - bound) * 100).toFixed(2)} pp` }
          : {}),
    });
    const f = r.result.l2.firstSecondError;
    out.push({
      target: 'first-second overshoot',
      scope: caseName(r),
      measured: pct(f, 1),
      bound: '≤ +2 %',
      pass: f <= 0.02,
      ...(f > 0.02 ? { by: `${((f - 0.02) * 100).toFixed(1)} pp${burstShare(r)}` } : {}),
    });
    if (lim <= 1e6) {
      const c = r.result.l2.cov250;
      out.push({
        target: 'CoV of 250 ms bins',
        scope: caseName(r),
        measured: c === null ? 'n/a' : `${(c * 100).toFixed(1)} %`,
        bound: '≤ 10 %',
        pass: c !== null && c <= 0.1,
        ...(c !== null && c > 0.1 ? { by: `${((c - 0.1) * 100).toFixed(1)} pp` } : {}),
      });
    }
  }
  for (const r of nq.filter((x) => x.kind === 'rtt' && x.limitBps! >= 10e6)) {
    if (!r.result?.rtt) {
      failed(r, 'RTT p99 under load');
      continue;
    }
    const p99 = r.result.rtt.p99;
    const share = r.result.goodputSteadyBps / r.limitBps!;
    out.push({
      target: 'RTT p99 under load',
      scope: caseName(r),
      measured: `${ms(p99)} ms`,
      bound: '≤ 5 ms',
      pass: p99 <= 5,
      ...(p99 > 5 ? { by: Number.isFinite(p99) ? `${(p99 - 5).toFixed(2)} ms` : 'probes lost' } : {}),
    });
    out.push({
      target: 'goodput under load',
      scope: caseName(r),
      measured: Number.isFinite(share) ? `${(share * 100).toFixed(1)} %` : 'n/a',
      bound: '≥ 95 % of limit',
      pass: share >= 0.95,
      ...(r.result.iperfError ? { untested: `iperf3 gave no report: ${r.result.iperfError}` } : share < 0.95 ? { by: `${((0.95 - share) * 100).toFixed(1)} pp` } : {}),
    });
  }
  for (const r of nq.filter((x) => x.kind === 'udp')) {
    if (!r.result) {
      failed(r, 'UDP received rate');
      continue;
    }
    const share = r.result.udpReceivedBps! / r.limitBps!;
    const offered = r.result.udpOfferedBps! / r.limitBps!;
    // a sender that cannot offer more than the limit tests nothing: say so instead of passing
    const flood = offered >= 1.05;
    out.push({
      target: 'UDP received rate',
      scope: `${caseName(r)} (offered ${mbit(r.result.udpOfferedBps!)} Mbit/s)`,
      measured: `${(share * 100).toFixed(2)} % of limit`,
      bound: '≤ 101 %',
      pass: flood && share <= 1.01,
      ...(r.result.iperfError
        ? { untested: `iperf3 gave no report: ${r.result.iperfError}` }
        : !flood ? { untested: `one iperf3 UDP sender reached only ${(offered * 100).toFixed(0)} % of the limit here` }
          : share > 1.01
            ? { by: `${((share - 1.01) * 100).toFixed(2)} pp` }
            : {}),
    });
  }
  const c = data.cost;
  if (c && c.raw.netqosApply.length > 0 && c.raw.cniAdd.length > 0) {
    const ratio = c.netqosApplyMs.median / c.cniAddMs.median;
    out.push({
      target: 'engine apply p50 vs CNI ADD p50',
      scope: `${c.runs} rounds, both directions`,
      measured: `${c.netqosApplyMs.median.toFixed(2)} ms vs ${c.cniAddMs.median.toFixed(2)} ms (${ratio.toFixed(2)}x)`,
      bound: '≤ 1.5x',
      pass: ratio <= 1.5,
      ...(ratio > 1.5 ? { by: `${(c.netqosApplyMs.median - 1.5 * c.cniAddMs.median).toFixed(2)} ms` } : {}),
    });
    const rr = c.netqosRemoveMs.median / c.cniDelMs.median;
    out.push({
      target: 'engine remove p50 vs CNI DEL p50',
      scope: `${c.runs} rounds`,
      measured: `${c.netqosRemoveMs.median.toFixed(2)} ms vs ${c.cniDelMs.median.toFixed(2)} ms (${rr.toFixed(2)}x)`,
      bound: '≤ 1x',
      pass: rr <= 1,
      ...(rr > 1 ? { by: `${(c.netqosRemoveMs.median - c.cniDelMs.median).toFixed(2)} ms` } : {}),
    });
  }
  for (const s of (data.scale ?? []).filter((x) => x.system === 'netqos')) {
    const p = s.applyPerTarget;
    const ratio = p ? p.p99 / p.median : Infinity;
    const ok = s.applyFailures === 0 && s.removeFailures === 0 && s.leftovers === 0 && ratio <= 2;
    out.push({
      target: `${s.n} concurrent targets`,
      scope: `N = ${s.n}`,
      measured: `${s.applyFailures + s.removeFailures} failures, ${s.leftovers} leftovers, apply p99/p50 ${Number.isFinite(ratio) ? ratio.toFixed(2) : 'n/a'}`,
      bound: '0, 0, ≤ 2',
      pass: ok,
      ...(!ok ? { by: ratio > 2 ? `p99/p50 ${(ratio - 2).toFixed(2)} over` : 'failures or leftovers' } : {}),
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// the Markdown report

export interface ReportFiles {
  json: string;
  charts: { title: string; file: string }[];
}

export function markdown(d: BenchData, files: ReportFiles): string {
  const m = d.machine;
  const lines: string[] = [];
  lines.push(`# netqos bench, ${d.date}${d.quick ? ' (quick)' : ''}`, '');
  lines.push(
    `Machine: ${m.cpus} × ${m.cpuModel}, ${m.memGiB} GiB, kernel ${m.kernel}, Node ${m.node}; TCP ${m.congestionControl}; ${m.iperf3}; CNI plugin ${m.cniPlugin}.`,
    `Load average (1, 5, 15 min) at start ${m.loadStart.join(', ')}, at end ${m.loadEnd.join(', ')}. Run took ${(d.durationS / 60).toFixed(1)} min: \`${['npm run bench --', ...d.argv].join(' ')}\`.`,
    `Raw data: \`${files.json}\`.`,
    '',
  );
  lines.push('## Summary', '');
  lines.push(mdTable(SUMMARY_HEAD, summaryRows(d.rows), 4), '');
  lines.push(
    'L2 = bytes counted by the shaper\'s own qdisc (netqos: HTB root; CNI: its TBF; unshaped: a counting pfifo), seconds 2..N of a TCP run; ' +
      'error = (L2 − limit) / limit; 1st second = L2 over the first second vs the limit; goodput = iperf3 payload from second 2 on (≈ 95.6 % of L2 for full frames); ' +
      'CoV = coefficient of variation of 250 ms bins in the steady window; RTT = busybox ping through the shaped direction while a remote-like TCP cubic sender saturates it ' +
      '(lost probes count as infinite); goodput under load = that sender\'s goodput / limit; UDP = payload received / limit with 2 × limit offered. ' +
      'Several values: median (min..max) over repeats. See bench/README.md.',
    '',
  );
  const v = verdicts(d);
  lines.push('## Targets (issue 3), netqos', '');
  const tested = v.filter((x) => !x.untested);
  lines.push(`${tested.filter((x) => x.pass).length} of ${tested.length} checks hold${v.length > tested.length ? `; ${v.length - tested.length} could not be tested on this machine` : ''}.`, '');
  lines.push(
    mdTable(
      ['target', 'case', 'measured', 'bound', 'holds', 'missed by'],
      v.map((x) => [x.target, x.scope, x.measured, x.bound, x.untested ? 'untested' : x.pass ? 'yes' : '**no**', x.untested ?? x.by ?? '']),
      2,
    ),
    '',
  );
  if (d.cost) {
    const c = d.cost;
    const row = (name: string, s: { median: number; p95: number; min: number; max: number; n: number }): string[] => [
      name,
      String(s.n),
      s.median.toFixed(2),
      s.p95.toFixed(2),
      s.min.toFixed(2),
      s.max.toFixed(2),
    ];
    lines.push('## Setup cost, one target at a time', '');
    lines.push(
      mdTable(
        ['operation', 'n', 'median ms', 'p95 ms', 'min ms', 'max ms'],
        [
          row('netqos applyQos (ingress + egress 10M)', c.netqosApplyMs),
          row('CNI bandwidth ADD (ingress + egress 10M)', c.cniAddMs),
          row('netqos removeQos', c.netqosRemoveMs),
          row('CNI bandwidth DEL', c.cniDelMs),
        ],
      ),
      '',
      'netqos is timed in-process around the engine call (its ip and tc processes included, until they answer a question asked after the last change; the exits come after); the CNI plugin from fork to exit by a bash in the node namespace ($EPOCHREALTIME), as containerd forks it. Rounds interleave the two.',
      ...(c.failures.length ? ['', `Failures: ${c.failures.slice(0, 5).join('; ')}`] : []),
      '',
    );
  }
  if (d.scale?.length) {
    lines.push('## N targets at once', '');
    lines.push(
      mdTable(
        ['system', 'N', 'apply total ms', 'apply p50 ms', 'apply p99 ms', 'p99/p50', 'failures', 'remove total ms', 'remove p50 ms', 'remove p99 ms', 'leftovers'],
        d.scale.map((s) => [
          s.system,
          String(s.n),
          s.applyTotalMs.toFixed(0),
          s.applyPerTarget ? s.applyPerTarget.median.toFixed(1) : '',
          s.applyPerTarget ? s.applyPerTarget.p99.toFixed(1) : '',
          s.applyPerTarget ? (s.applyPerTarget.p99 / s.applyPerTarget.median).toFixed(2) : '',
          String(s.applyFailures + s.removeFailures),
          s.removeTotalMs.toFixed(0),
          s.removePerTarget ? s.removePerTarget.median.toFixed(1) : '',
          s.removePerTarget ? s.removePerTarget.p99.toFixed(1) : '',
          String(s.leftovers),
        ]),
        2,
      ),
      '',
      'netqos: all N applyQos calls start together in one process (a node daemon\'s view) and each is timed from its call to its end; then all N removeQos; leftovers = targets where the engine still finds anything of its own. ' +
        'CNI: one bash forks N plugin processes at once; leftovers = bwp ifbs left after DEL (the host veth qdiscs go with the veth, as in a real runtime).',
      ...d.scale.flatMap((s) => (s.firstErrors.length ? [`${s.system} N=${s.n} errors: ${s.firstErrors.join('; ')}`] : [])),
      '',
    );
  }
  if (d.hookTiming) lines.push('## OCI hook wall time', '', `From bench/hook-timing.ts: \`${d.hookTiming.file}\`.`, '');
  lines.push('## Charts', '');
  for (const c of files.charts) lines.push(`![${c.title}](${c.file})`, '');
  const failures = d.rows.filter((r) => r.status === 'failed');
  const unsupported = [...new Set(d.rows.filter((r) => r.status === 'unsupported').map((r) => `${SYSTEM_LABEL[r.system]} on ${r.device}: ${r.error}`))];
  if (unsupported.length) lines.push('## Not supported', '', ...unsupported.map((u) => `- ${u}`), '');
  if (failures.length) lines.push('## Failed runs', '', ...failures.map((r) => `- ${r.system} ${caseName(r)} ${r.kind}: ${r.error}`), '');
  lines.push('## What each system put in place', '');
  const details = new Map<string, string>();
  for (const r of d.rows) if (r.detail) details.set(`${r.system} ${r.device} ${r.direction} ${limitText(r.limitBps)}`, r.detail);
  for (const [k, v2] of details) lines.push(`- ${k}: ${v2}`);
  lines.push('');
  return lines.join('\n');
}
