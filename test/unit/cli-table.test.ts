/**
 * The CLI's output: plain tables, status built from recorded kernel output, the apply and demo
 * tables, and the doctor's report.
 */
import { describe, expect, it } from 'vitest';
import { renderShaped } from '../../src/cli/apply.js';
import { renderResults } from '../../src/cli/demo.js';
import {
  configCheck,
  hookCheck,
  kernelChecks,
  nodeCheck,
  renderDoctorTable,
  report,
  runtimeChecks,
  toolChecks,
} from '../../src/cli/doctor-report.js';
import { buildStatus, renderStatusJson, renderStatusTable, shapedTrees, statusInterfaces } from '../../src/cli/status-report.js';
import { formatPercent, formatTable } from '../../src/cli/table.js';
import { minNode } from '../../src/cli/version.js';
import { DEFAULT_CONFIG } from '../../src/domain/config.js';
import type { Observed } from '../../src/domain/link.js';
import { parseHtbClassText } from '../../src/plan/parse-class.js';
import { parseIpLinks } from '../../src/plan/parse-ip.js';
import { parseQdiscs, type QdiscStats } from '../../src/plan/parse-tc.js';
import { fixture } from '../support/kernel-fixtures.js';


describe('formatTable', () => {
  it('pads columns to the widest cell, two spaces apart, right-aligns where asked, trims line ends', () => {
    const text = formatTable(['NAME', 'N', 'NOTE'], [['eth0', '5', 'x'], ['a-long-name', '12345', '']], ['left', 'right', 'left']);
    expect(text).toBe(['NAME             N  NOTE', 'eth0             5  x', 'a-long-name  12345', ''].join('\n'));
  });

  it('short rows leave the remaining cells empty', () => {
    expect(formatTable(['A', 'B', 'C'], [['1']])).toBe('A  B  C\n1\n');
  });
});

describe('formatPercent', () => {
  it.each([
    [0.00021, '+0.02 %'],
    [-0.0026, '-0.26 %'],
    [0, '0.00 %'],
    [-0.00001, '0.00 %'],
    [0.05, '+5.00 %'],
  ])('%d -> %s', (x, text) => {
    expect(formatPercent(x)).toBe(text);
  });
});

/** the recorded shaped veth namespace: nqtc0 (ifindex 2) egress 10M on itself, ingress 20M on nqi2 */
function shapedVeth(): { observed: Observed; stats: Map<string, QdiscStats[]> } {
  const links = parseIpLinks(fixture('ip-link-veth-shaped.json'));
  const qdiscs = parseQdiscs(fixture('tc-qdisc-veth-shaped-stats.json'));
  const stats = new Map<string, QdiscStats[]>();
  for (const q of qdiscs) stats.set(q.dev, [...(stats.get(q.dev) ?? []), q]);
  return { observed: { links, qdiscs }, stats };
}

const CLASSES = new Map([
  ['nqtc0', parseHtbClassText(fixture('tc-class-htb-stats.txt'), 'nqtc0')],
  ['nqi2', parseHtbClassText(fixture('tc-class-veth-shaped-nqi2.txt'), 'nqi2')],
]);

describe('status', () => {
  it('finds the trees: egress on the device, ingress on its ifb; lo and our ifb are no interfaces', () => {
    const { observed } = shapedVeth();
    expect(statusInterfaces(observed).map((l) => l.name)).toEqual(['nqtc0']);
    expect(shapedTrees(observed).map((t) => [t.iface.name, t.direction, t.dev])).toEqual([
      ['nqtc0', 'egress', 'nqtc0'],
      ['nqtc0', 'ingress', 'nqi2'],
    ]);
  });

  it('configured rate and burst from the class, counters from the root, drops and backlog from the leaves (bulk + small packets)', () => {
    const { observed, stats } = shapedVeth();
    // make the leaves' drops and backlog differ from the root's, to see where they are read
    const bulk = stats.get('nqi2')!.find((q) => q.parent === '4e51:10')!;
    bulk.drops = 7;
    bulk.backlog = 3028;
    const small = stats.get('nqi2')!.find((q) => q.parent === '4e51:3')!;
    small.drops = 2;
    small.backlog = 100;
    const r = buildStatus({ target: 'netns /run/netns/x', observed, stats, classes: CLASSES });
    expect(r.interfaces).toEqual([
      {
        name: 'nqtc0',
        index: 2,
        kind: 'veth',
        egress: {
          direction: 'egress',
          shaped: true,
          shapedOn: 'nqtc0',
          rateBps: 10e6,
          ceilBps: 10e6,
          burstBytes: 12500,
          cburstBytes: 12500,
          leaf: { kind: 'bfifo', handle: '5010:', limitBytes: 6250 },
          counters: { bytes: 5556, packets: 14, drops: 0, overlimits: 0, backlog: 0 },
        },
        ingress: {
          direction: 'ingress',
          shaped: true,
          shapedOn: 'nqi2',
          rateBps: 20e6,
          ceilBps: 20e6,
          burstBytes: 25000,
          cburstBytes: 25000,
          leaf: { kind: 'tbf', handle: '7010:' },
          counters: { bytes: 5630, packets: 15, drops: 9, overlimits: 0, backlog: 3128 },
        },
      },
    ]);
    expect(renderStatusTable(r)).toBe(
      [
        'netns /run/netns/x',
        'INTERFACE  DIRECTION  SHAPED ON  RATE   BURST  LEAF            BYTES  PACKETS  DROPS  OVERLIMITS  BACKLOG',
        'nqtc0      egress     nqtc0       10M  12500B  bfifo 6250B      5556       14      0           0       0B',
        'nqtc0      ingress    nqi2        20M  25000B  tbf (segments)   5630       15      9           0    3128B',
        '',
      ].join('\n'),
    );
    expect(JSON.parse(renderStatusJson(r))).toEqual(r);
  });

  it('an unshaped namespace shows each direction as unshaped', () => {
    const observed: Observed = { links: parseIpLinks(fixture('ip-link-veth.json')), qdiscs: parseQdiscs(fixture('tc-qdisc-veth.json')) };
    const r = buildStatus({ target: 'pid 42', observed, stats: new Map(), classes: new Map() });
    expect(r.interfaces.map((i) => [i.name, i.egress, i.ingress])).toEqual([
      ['nqtc0', { direction: 'egress', shaped: false }, { direction: 'ingress', shaped: false }],
    ]);
    expect(renderStatusTable(r)).toContain('\nnqtc0      egress     unshaped\nnqtc0      ingress    unshaped\n');
  });

  it('egress only: ingress unshaped', () => {
    const observed: Observed = {
      links: parseIpLinks(fixture('ip-link-veth-egress-only.json')),
      qdiscs: parseQdiscs(fixture('tc-qdisc-veth-egress-only.json')),
    };
    expect(shapedTrees(observed).map((t) => [t.direction, t.dev])).toEqual([['egress', 'nqtc0']]);
  });

  it('a namespace with only lo has nothing to show', () => {
    const observed: Observed = { links: parseIpLinks(fixture('ip-link-lo-only.json')), qdiscs: [] };
    const r = buildStatus({ target: 'pid 42', observed, stats: new Map(), classes: new Map() });
    expect(r.interfaces).toEqual([]);
    expect(renderStatusTable(r)).toBe('pid 42: no interface netqos could shape (only loopback or unsupported kinds)\n');
  });

  it('a class tc did not list shows "?", not a made-up rate', () => {
    const { observed, stats } = shapedVeth();
    const r = buildStatus({ target: 't', observed, stats, classes: new Map() });
    expect(r.interfaces[0]!.egress.rateBps).toBeUndefined();
    expect(renderStatusTable(r).split('\n')[2]).toMatch(/^nqtc0\s+egress\s+nqtc0\s+\?\s+\?\s+bfifo 6250B/);
  });
});

describe('apply and demo tables', () => {
  it('renderShaped: device, direction, where, rate, burst, leaf', () => {
    const text = renderShaped([
      { dev: 'eth0', direction: 'egress', shapedOn: 'eth0', rateBps: 10e6, burstBytes: 12500, quantum: 1514, leaf: 'bfifo 6250B' },
      { dev: 'eth0', direction: 'ingress', shapedOn: 'nqi2', rateBps: 2 ** 30, burstBytes: 1342177, quantum: 134218, leaf: 'bfifo 67050B' },
    ]);
    expect(text.split('\n')).toEqual([
      'INTERFACE  DIRECTION  SHAPED ON    RATE     BURST  LEAF',
      'eth0       egress     eth0          10M    12500B  bfifo 6250B',
      'eth0       ingress    nqi2       1.074G  1342177B  bfifo 67050B',
      '',
    ]);
  });

  it('renderResults: configured, measured L2 with its error, goodput and its share of L2', () => {
    const text = renderResults([
      { direction: 'egress', path: 'a -> b', shapedOn: 'nqdemo0', configuredBps: 10e6, measuredL2Bps: 10.002e6, error: 0.0002, goodputBps: 9.561e6, steadySeconds: 2 },
      { direction: 'ingress', path: 'b -> a', shapedOn: 'nqi100', configuredBps: 20e6, measuredL2Bps: 19.949e6, error: -0.00255, goodputBps: 19.071e6, steadySeconds: 2 },
    ]);
    expect(text.split('\n')).toEqual([
      'DIRECTION  TRAFFIC  SHAPED ON  CONFIGURED  MEASURED L2    ERROR  GOODPUT  GOODPUT/L2',
      'egress     a -> b   nqdemo0           10M      10.002M  +0.02 %   9.561M      95.6 %',
      'ingress    b -> a   nqi100            20M      19.949M  -0.26 %  19.071M      95.6 %',
      '',
    ]);
  });
});

describe('doctor report', () => {
  const REQUIRED = ['htb', 'bfifo', 'ingress', 'u32', 'mirred', 'ifb'];
  const ALL = { htb: true, bfifo: true, ingress: true, u32: true, mirred: true, ifb: true, tbf: true, pfifo: true, fq_codel: false, clsact: true };

  it('this kernel: every required feature present, fq_codel missing is only optional', () => {
    const checks = kernelChecks(REQUIRED, ALL);
    expect(checks.map((c) => c.name)).toEqual([...REQUIRED, 'tbf', 'pfifo', 'fq_codel', 'clsact']);
    expect(report(checks).ok).toBe(true);
    const fq = checks.find((c) => c.name === 'fq_codel')!;
    expect(fq).toMatchObject({ ok: false, required: false, state: 'missing', fix: 'enable CONFIG_NET_SCH_FQ_CODEL (sch_fq_codel)' });
  });

  it('a missing required feature fails the report and says what to enable', () => {
    const checks = kernelChecks(REQUIRED, { ...ALL, mirred: false, ifb: false });
    const r = report(checks);
    expect(r.ok).toBe(false);
    expect(checks.find((c) => c.name === 'ifb')).toMatchObject({ ok: false, required: true, fix: 'enable CONFIG_IFB (ifb)' });
    expect(renderDoctorTable(r).trimEnd().split('\n').at(-1)).toBe(
      'netqos doctor: 2 required parts missing or broken: kernel mirred, kernel ifb',
    );
  });

  it('a probe that could not run fails every required feature with the reason', () => {
    const checks = kernelChecks(REQUIRED, { error: 'unshare not found' });
    expect(checks).toHaveLength(REQUIRED.length);
    expect(checks.every((c) => !c.ok && c.required && c.detail === 'the probe failed: unshare not found')).toBe(true);
  });

  it('tools: required ones fail the report, iperf3 does not', () => {
    const base = { use: 'u', pkg: 'iproute2' };
    expect(report(toolChecks([{ name: 'tc', required: true, ...base }])).ok).toBe(false);
    const checks = toolChecks([{ name: 'iperf3', required: false, use: 'demo', pkg: 'iperf3' }]);
    expect(report(checks).ok).toBe(true);
    expect(checks[0]).toMatchObject({ state: 'not found', fix: 'install the Debian package iperf3' });
  });

  it.each([
    ['20.20.2', [18, 0], true],
    ['18.19.0', [18, 0], true],
    ['v22.1.0', [18, 0], true],
    ['16.20.2', [18, 0], false],
    ['20.5.0', [20, 5], true],
    ['20.4.9', [20, 5], false],
  ] as const)('node %s against %j: ok=%s', (version, min, ok) => {
    const check = nodeCheck(version, min);
    expect(check.ok).toBe(ok);
    expect(check.detail).toBe(`v${version.replace(/^v/, '')} (netqos needs >= ${min[0]}.${min[1]})`);
    if (!ok) expect(check.fix).toBe(`install Node.js ${min[0]}.${min[1]} or later`);
  });

  it.each([
    ['>=18', [18, 0]],
    ['>=20.5', [20, 5]],
    ['>= 20.5.1', [20, 5]],
    ['^18', [0, 0]],
  ])('engines %j -> %j', (range, min) => {
    expect(minNode(range)).toEqual(min);
  });

  it('runtimes are reported, never required', () => {
    const checks = runtimeChecks([{ name: 'podman', path: '/usr/bin/podman', version: 'podman version 4.3.1' }, { name: 'containerd' }]);
    expect(checks.map((c) => [c.name, c.state, c.detail])).toEqual([
      ['podman', 'found', '/usr/bin/podman: podman version 4.3.1'],
      ['containerd', 'not found', '-'],
    ]);
    expect(report(checks).ok).toBe(true);
  });

  it('hooks.d: installed, broken or not installed (never required)', () => {
    const dirs = ['/usr/share/containers/oci/hooks.d', '/etc/containers/oci/hooks.d'];
    expect(hookCheck('50-netqos.json', dirs, [])).toMatchObject({
      ok: false,
      required: false,
      state: 'not installed',
      fix: 'install hooks/50-netqos.json as /usr/share/containers/oci/hooks.d/50-netqos.json',
    });
    expect(hookCheck('50-netqos.json', dirs, [{ path: '/etc/containers/oci/hooks.d/50-netqos.json', command: '/usr/bin/node /x.mjs' }])).toMatchObject({
      ok: true,
      state: 'installed',
      detail: '/etc/containers/oci/hooks.d/50-netqos.json runs /usr/bin/node /x.mjs',
    });
    expect(hookCheck('50-netqos.json', dirs, [{ path: '/p', problem: 'it runs /x.mjs, which does not exist' }])).toMatchObject({
      ok: false,
      state: 'broken',
      detail: '/p: it runs /x.mjs, which does not exist',
    });
  });

  it('config: absent and valid pass, invalid fails with its one-line error', () => {
    expect(configCheck({ path: '/etc/netqos/config.json', state: 'absent' })).toMatchObject({ ok: true, detail: 'no file: the defaults apply' });
    expect(configCheck({ path: '/c', state: 'valid', config: DEFAULT_CONFIG }).detail).toBe(
      'valid: onError fail, queueLatency 5ms, hookTimeoutMs 8000, log /var/log/netqos/netqos.log (info)',
    );
    const bad = configCheck({ path: '/c', state: 'invalid', error: 'invalid config /c: onError="x": not one of the choices' });
    expect(bad).toMatchObject({ ok: false, required: true, state: 'invalid' });
    expect(report([bad]).ok).toBe(false);
  });
});
