/**
 * The bench's report (bench/lib/report.ts, svg.ts): the summary table, the targets of issue 3
 * with pass / fail and by how much, and the charts, from hand-made rows.
 */
import { describe, expect, it } from 'vitest';
import type { RunResult } from '../../bench/lib/measure.js';
import { markdown, merge, mdTable, ms, pct, SUMMARY_HEAD, summaryRows, verdicts, type BenchData, type CaseRow } from '../../bench/lib/report.js';
import { rateChart, rttChart } from '../../bench/lib/svg.js';

function result(over: Partial<RunResult> & { steadyBps: number; limit: number; first?: number; cov?: number | null }): RunResult {
  const { steadyBps, limit, first, cov, ...rest } = over;
  const firstBps = first ?? limit;
  return {
    l2: {
      startT: 100,
      startUncertaintyMs: 10,
      firstSecondBps: firstBps,
      steadyBps,
      steadyFromT: 2100,
      steadyToT: 9850,
      backloggedShare: 1,
      steadyError: (steadyBps - limit) / limit,
      firstSecondError: (firstBps - limit) / limit,
      cov250: cov === undefined ? 0.01 : cov,
    },
    perSecondBps: [firstBps, limit, limit],
    bins250Bps: [limit, limit],
    goodputBps: steadyBps * 0.956,
    goodputSteadyBps: steadyBps * 0.956,
    drops: 0,
    samples: 300,
    ...rest,
  };
}

const row = (r: Partial<CaseRow> & Pick<CaseRow, 'system' | 'kind' | 'limitBps'>): CaseRow => ({
  repeat: 0,
  device: 'veth',
  direction: 'egress',
  status: 'ok',
  seconds: 10,
  loadBefore: 0.5,
  ...r,
});

const ROWS: CaseRow[] = [
  row({ system: 'netqos', kind: 'tcp', limitBps: 10e6, result: result({ steadyBps: 10.003e6, limit: 10e6, first: 10.1e6 }) }),
  row({
    system: 'netqos',
    kind: 'rtt',
    limitBps: 10e6,
    result: result({ steadyBps: 10e6, limit: 10e6, goodputSteadyBps: 9.52e6, rtt: { sent: 100, received: 100, p50: 3.4, p90: 4.4, p99: 6.1, max: 7, samplesMs: [3.4] } }),
  }),
  row({ system: 'netqos', kind: 'udp', limitBps: 10e6, result: result({ steadyBps: 10e6, limit: 10e6, udpOfferedBps: 20e6, udpReceivedBps: 9.75e6 }) }),
  row({ system: 'cni-containerd', kind: 'tcp', limitBps: 10e6, result: result({ steadyBps: 10.002e6, limit: 10e6, first: 1.5e9 }) }),
  row({ system: 'cni-tuned', device: 'macvlan', kind: 'tcp', limitBps: 10e6, status: 'unsupported', error: 'CNI ADD refused the macvlan: no veth peer' }),
  row({ system: 'netqos', kind: 'tcp', limitBps: 1e6, result: result({ steadyBps: 0.985e6, limit: 1e6, cov: 0.25 }) }),
  row({ system: 'unshaped', kind: 'tcp', limitBps: null, result: result({ steadyBps: 25e9, limit: 10e9 }) }),
];

describe('formatting', () => {
  it('signed percentages, ms with sensible digits, lost probes', () => {
    expect(pct(0.00031)).toBe('+0.03 %');
    expect(pct(-0.0107)).toBe('-1.07 %');
    expect(pct(-0.00001)).toBe('+0.00 %');
    expect(pct(147.9, 1)).toBe('+14790.0 %');
    expect(ms(0.0612)).toBe('0.06');
    expect(ms(37.71)).toBe('37.7');
    expect(ms(2903.2)).toBe('2903');
    expect(ms(Infinity)).toBe('lost');
  });
  it('a Markdown table has a header, an alignment row and one line per row', () => {
    expect(mdTable(['a', 'b'], [['x', '1']])).toBe('| a | b |\n| --- | ---: |\n| x | 1 |');
  });
});

describe('summary table', () => {
  const rows = summaryRows(ROWS);
  it('one line per device x direction x limit x system, sorted, every column filled in', () => {
    expect(merge(ROWS)).toHaveLength(5);
    for (const r of rows) expect(r).toHaveLength(SUMMARY_HEAD.length);
    expect(rows.map((r) => r.slice(0, 4).join(' '))).toEqual([
      'veth egress none unshaped',
      'veth egress 1M netqos',
      'veth egress 10M netqos',
      'veth egress 10M cni-k8s',
      'macvlan egress 10M cni-tuned',
    ]);
  });
  it('netqos 10M: L2, error, first second, goodput, CoV, RTT, goodput under load, UDP', () => {
    const r = rows.find((x) => x[2] === '10M' && x[3] === 'netqos')!;
    expect(r.slice(4)).toEqual(['10.0', '+0.03 %', '+1.0 %', '9.56', '1.0 %', '3.40', '6.10', '95.2 %', '97.5 %']);
  });
  it('containerd\'s burst shows as the first-second overshoot', () => {
    expect(rows.find((x) => x[3] === 'cni-k8s')![6]).toBe('+14900.0 %');
  });
  it('a system that refuses the device says "not supported"', () => {
    const r = rows.find((x) => x[0] === 'macvlan')!;
    expect(r[4]).toBe('not supported');
  });
  it('the ceiling has rates and no errors against a limit', () => {
    const r = rows.find((x) => x[3] === 'unshaped')!;
    expect(r[4]).toBe('25000');
    expect(r[5]).toBe('');
  });
  it('repeats show the median and the range', () => {
    const twice = [...ROWS.slice(0, 1), { ...ROWS[0]!, repeat: 1, result: result({ steadyBps: 10.05e6, limit: 10e6 }) }, { ...ROWS[0]!, repeat: 2, result: result({ steadyBps: 9.99e6, limit: 10e6 }) }];
    expect(summaryRows(twice)[0]![5]).toBe('+0.03 % (-0.10 %..+0.50 %)');
  });
});

describe('targets', () => {
  const data: Pick<BenchData, 'rows' | 'cost' | 'scale'> = {
    rows: ROWS,
    cost: {
      runs: 30,
      netqosApplyMs: { n: 30, median: 6, p95: 8, p99: 9, min: 5, max: 9, mean: 6 },
      netqosRemoveMs: { n: 30, median: 20, p95: 25, p99: 26, min: 18, max: 26, mean: 20 },
      cniAddMs: { n: 30, median: 3.7, p95: 5, p99: 5, min: 3, max: 5, mean: 3.7 },
      cniDelMs: { n: 30, median: 14.7, p95: 16, p99: 16, min: 13, max: 16, mean: 14.7 },
      raw: { netqosApply: [6], netqosRemove: [20], cniAdd: [3.7], cniDel: [14.7] },
      failures: [],
    },
    scale: [
      {
        system: 'netqos',
        n: 500,
        applyTotalMs: 9000,
        applyPerTarget: { n: 500, median: 4000, p95: 8000, p99: 8800, min: 10, max: 9000, mean: 4300 },
        applyFailures: 0,
        removeTotalMs: 12000,
        removePerTarget: null,
        removeFailures: 0,
        leftovers: 0,
        firstErrors: [],
      },
    ],
  };
  const v = verdicts(data);
  const find = (target: string, scope: string) => v.find((x) => x.target === target && x.scope.startsWith(scope))!;

  it('steady error: ±0.5 % from 10M, ±1 % at 1M, with the window length', () => {
    expect(find('steady L2 error', 'veth egress 10M')).toMatchObject({ pass: true, measured: '+0.03 %', bound: '±0.5 %' });
    expect(find('steady L2 error', 'veth egress 1M')).toMatchObject({ pass: false, measured: '-1.50 %', bound: '±1.0 %', by: '0.50 pp' });
    expect(find('steady L2 error', 'veth egress 1M').scope).toContain('7.8 s window');
  });
  it('first second, CoV at 1M, RTT and goodput under load, UDP', () => {
    expect(find('first-second overshoot', 'veth egress 10M')).toMatchObject({ pass: true, measured: '+1.0 %' });
    expect(find('CoV of 250 ms bins', 'veth egress 1M')).toMatchObject({ pass: false, measured: '25.0 %', by: '15.0 pp' });
    expect(find('RTT p99 under load', 'veth egress 10M')).toMatchObject({ pass: false, measured: '6.10 ms', by: '1.10 ms' });
    expect(find('goodput under load', 'veth egress 10M')).toMatchObject({ pass: true, measured: '95.2 %' });
    expect(find('UDP received rate', 'veth egress 10M')).toMatchObject({ pass: true, measured: '97.50 % of limit' });
  });
  it('a first second over +2 % says when the burst alone (two frames at 1M) is more than that', () => {
    const res = result({ steadyBps: 1e6, limit: 1e6, first: 1.032e6 });
    const detail = 'htb rate 1M burst 3028B quantum 1514, leaf bfifo 4542B';
    const [, f] = verdicts({ rows: [row({ system: 'netqos', kind: 'tcp', limitBps: 1e6, result: res, detail })] });
    expect(f).toMatchObject({
      target: 'first-second overshoot',
      pass: false,
      by: '1.2 pp: the burst alone, 3028 B (two frames, the least issue 2 allows), is 2.4 % of a second at this rate',
    });
    // at 10M the same two frames are 0.24 %: a miss there is the shaper's, said plainly
    const res10 = result({ steadyBps: 10e6, limit: 10e6, first: 10.3e6 });
    const [, f10] = verdicts({ rows: [row({ system: 'netqos', kind: 'tcp', limitBps: 10e6, result: res10, detail: 'htb rate 10M burst 12500B quantum 1514, leaf bfifo 6250B' })] });
    expect(f10).toMatchObject({ pass: false, by: '1.0 pp' });
  });
  it('only netqos is judged', () => {
    expect(v.every((x) => !x.scope.includes('cni'))).toBe(true);
    expect(v.filter((x) => x.target === 'first-second overshoot')).toHaveLength(2);
  });
  it('setup cost against the CNI plugin in the same run, and N targets', () => {
    expect(find('engine apply p50 vs CNI ADD p50', '30 rounds')).toMatchObject({ pass: false, by: '0.45 ms' });
    expect(find('engine remove p50 vs CNI DEL p50', '30 rounds')).toMatchObject({ pass: false, by: '5.30 ms' });
    expect(find('500 concurrent targets', 'N = 500')).toMatchObject({ pass: false, measured: '0 failures, 0 leftovers, apply p99/p50 2.20' });
  });
  it('short of the limit with the shaper\'s queue mostly empty is sender-bound: untested, not missed', () => {
    const res = result({ steadyBps: 9.83e9, limit: 10e9 });
    res.l2.backloggedShare = 0.47;
    const u = verdicts({ rows: [row({ system: 'netqos', kind: 'tcp', limitBps: 10e9, result: res })] });
    expect(u[0]).toMatchObject({ target: 'steady L2 error', measured: '-1.70 %', pass: false, untested: 'sender-bound: the shaper held a backlog in only 47 % of the samples' });
    res.l2.backloggedShare = 0.95; // backlogged and still short: the shaper's fault
    expect(verdicts({ rows: [row({ system: 'netqos', kind: 'tcp', limitBps: 10e9, result: res })] })[0]).toMatchObject({ pass: false, by: '1.20 pp' });
  });
  it('a UDP sender that cannot offer more than the limit leaves the target untested, not passed', () => {
    const u = verdicts({ rows: [row({ system: 'netqos', kind: 'udp', limitBps: 5e9, result: result({ steadyBps: 1e9, limit: 5e9, udpOfferedBps: 1.2e9, udpReceivedBps: 1.1e9 }) })] });
    expect(u[0]).toMatchObject({ target: 'UDP received rate', pass: false, untested: 'one iperf3 UDP sender reached only 24 % of the limit here' });
  });
  it('a failed netqos run is a failed target, never a silent gap', () => {
    const f = verdicts({ rows: [row({ system: 'netqos', kind: 'rtt', limitBps: 100e6, status: 'failed', error: 'iperf3 died' })] });
    expect(f).toEqual([{ target: 'RTT p99 under load', scope: 'veth egress 100M', measured: 'failed: iperf3 died', bound: '', pass: false }]);
  });
});

describe('markdown', () => {
  const d: BenchData = {
    kind: 'bench',
    date: '2026-11-21T12:00:00.000Z',
    argv: ['--quick'],
    quick: true,
    durationS: 150,
    machine: { kernel: '6.18', node: 'v20', cpus: 2, cpuModel: 'EPYC', memGiB: 24, loadStart: [0.5, 0.4, 0.3], loadEnd: [1, 0.5, 0.3], congestionControl: 'cubic', cniPlugin: 'bandwidth 1.1.1', iperf3: 'iperf 3.12' },
    rows: ROWS,
  };
  const md = markdown(d, { json: 'x.json', charts: [{ title: 'veth egress: rate over time', file: 'x/rate-veth-egress.svg' }] });
  it('machine, load before and after, every summary column, targets, charts, not-supported reasons', () => {
    expect(md).toContain('2 × EPYC');
    expect(md).toContain('at start 0.5, 0.4, 0.3, at end 1, 0.5, 0.3');
    expect(md).toContain(`| ${SUMMARY_HEAD.join(' | ')} |`);
    expect(md).toContain('## Targets (issue 3), netqos');
    expect(md).toContain('![veth egress: rate over time](x/rate-veth-egress.svg)');
    expect(md).toContain('CNI bandwidth, tuned burst (10 ms of rate) on macvlan: CNI ADD refused the macvlan: no veth peer');
  });
});

describe('svg', () => {
  it('a rate chart: one polyline per system, the limit dashed, clipped values labelled', () => {
    const s = rateChart('t', [{ title: '10M', lines: [{ label: 'netqos', color: '#000', values: [1, 1, 1] }, { label: 'cni', color: '#f00', values: [150, 1, 1] }] }]);
    expect(s.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(s.trimEnd().endsWith('</svg>')).toBe(true);
    expect(s.match(/<polyline /g)).toHaveLength(2);
    expect(s).toContain('stroke-dasharray');
    expect(s).toContain('>15000 %<');
  });
  it('an RTT chart draws a CDF per system and leaves lost probes out of the curve', () => {
    const s = rttChart('t', [{ title: '10M', lines: [{ label: 'netqos', color: '#000', values: [1, 2, Infinity] }] }]);
    expect(s.match(/<polyline /g)).toHaveLength(1);
    expect(s).not.toContain('NaN');
    expect(s).not.toContain('Infinity');
  });
});
