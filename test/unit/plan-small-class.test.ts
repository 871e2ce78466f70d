/**
 * The tree without classes (965f097): the limit 4e51:1, under it bulk 4e51:10 (the root's default)
 * and small packets 4e51:3 (prio 0), and two u32 filters on our root sending IP packets under 256
 * bytes to 4e51:3. Checked against kernel output recorded by test/fixtures/kernel/record-shaped.ts
 * (README.txt there), which also ran the old tree's rebuild below on the kernel (exit 0, and the
 * state afterwards was byte-for-byte the recorded shaped state).
 */
import { describe, expect, it } from 'vitest';
import { MINIMAL_CAPS, type Observed } from '../../src/domain/link.js';
import type { QosSpec } from '../../src/domain/spec.js';
import { planApply } from '../../src/plan/apply-plan.js';
import { htbTree } from '../../src/plan/htb-tree.js';
import type { Plan } from '../../src/plan/ops.js';
import { smallClassRate } from '../../src/plan/params.js';
import { parseHtbClassText } from '../../src/plan/parse-class.js';
import { parseIpLinks } from '../../src/plan/parse-ip.js';
import { parseFilters, parseQdiscs } from '../../src/plan/parse-tc.js';
import { renderIp, renderTc } from '../../src/plan/render.js';
import { fixture } from '../support/kernel-fixtures.js';

const text = (p: Plan) => ({ ip: renderIp(p.ip), tc: renderTc(p.tc), ipAfter: renderIp(p.ipAfter) });
const plan = (spec: QosSpec, observed: Observed): Plan => planApply({ spec, observed, caps: MINIMAL_CAPS });
const lines = (s: string): string[] => s.split('\n').filter((l) => l !== '');
const BOTH: QosSpec = { egress: { rateBps: 10e6 }, ingress: { rateBps: 20e6 } };

const rootFilters = (dev: string, file: string) => parseFilters(fixture(file), dev, '4e51:');
const fresh = (): Observed => ({ links: parseIpLinks(fixture('ip-link-veth.json')), qdiscs: parseQdiscs(fixture('tc-qdisc-veth.json')) });

describe('small-packet filters: what the planner expects is what the kernel printed', () => {
  it('recorded on the shaped veth and its ifb: prio 3 (ip) and 4 (ipv6), flowid 4e51:3, one 32-bit key each', () => {
    for (const [dev, file] of [
      ['nqtc0', 'tc-filter-veth-root-nqtc0.json'],
      ['nqi2', 'tc-filter-veth-root-nqi2.json'],
    ] as const) {
      expect(rootFilters(dev, file).map((f) => [f.dev, f.parent, f.prio, f.protocol, f.flowid, f.keys])).toEqual([
        // u16 0/0xff00 at 2 is the low half of the word at 0 (IPv4 total length)
        [dev, '4e51:', 3, 'ip', '4e51:3', ['00000000/0000ff00@0']],
        // u16 0/0xff00 at 4 is the high half of the word at 4 (IPv6 payload length)
        [dev, '4e51:', 4, 'ipv6', '4e51:3', ['00000000/ff000000@4']],
      ]);
    }
  });

  it('the same keys on every shaped device recorded (macvlan, two veths, per-interface)', () => {
    const files = [
      ['nqtm0', 'tc-filter-macvlan-root-nqtm0.json'],
      ['nqi6', 'tc-filter-macvlan-root-nqi6.json'],
      ...['nqtd0', 'nqtd1', 'nqi2', 'nqi3'].flatMap((d) => [
        [d, `tc-filter-two-veth-root-${d}.json`],
        [d, `tc-filter-perif-root-${d}.json`],
      ]),
    ];
    for (const [dev, file] of files) {
      expect(rootFilters(dev!, file!).map((f) => `${f.prio} ${f.protocol} ${f.flowid} ${f.keys?.join(',')}`)).toEqual([
        '3 ip 4e51:3 00000000/0000ff00@0',
        '4 ipv6 4e51:3 00000000/ff000000@4',
      ]);
    }
  });

  it('a plan over the recorded state adds no filter, and without the recorded filters it would', () => {
    const links = parseIpLinks(fixture('ip-link-veth-shaped.json'));
    const qdiscs = parseQdiscs(fixture('tc-qdisc-veth-shaped.json'));
    const hook = parseFilters(fixture('tc-filter-veth-ingress-ours.json'), 'nqtc0');
    const withRoot = [...hook, ...rootFilters('nqtc0', 'tc-filter-veth-root-nqtc0.json'), ...rootFilters('nqi2', 'tc-filter-veth-root-nqi2.json')];
    expect(lines(text(plan(BOTH, { links, qdiscs, filters: withRoot })).tc).filter((l) => l.startsWith('filter '))).toEqual([]);
    expect(lines(text(plan(BOTH, { links, qdiscs, filters: hook })).tc).filter((l) => l.startsWith('filter '))).toHaveLength(4);
  });
});

describe('small-packet class: rates', () => {
  const tree = (rateBps: number, mtu = 1500) =>
    htbTree({ dev: 'nqtc0', rateBps, mtu, maxSkb: 3028, latencyUs: 5000, caps: MINIMAL_CAPS }).ops;
  const classLine = (rateBps: number, classid: string, mtu?: number): string =>
    lines(renderTc(tree(rateBps, mtu))).find((l) => l.includes(` classid ${classid} `))!;

  it('bulk is guaranteed the limit less 5 %, small packets 5 %; both may borrow up to the limit', () => {
    for (const r of [1e6, 10e6, 20e6, 100e6, 1e9, 10e9]) {
      const small = Math.round(r * 0.05);
      expect(smallClassRate(r)).toBe(small);
      expect(classLine(r, '4e51:10')).toMatch(new RegExp(` rate ${r - small}bit ceil ${r}bit .* prio 1 `));
      expect(classLine(r, '4e51:3')).toMatch(new RegExp(` rate ${small}bit ceil ${r}bit .* prio 0 `));
      // the guarantees add up to the limit (4e51:1, rate = ceil)
      expect(classLine(r, '4e51:1')).toMatch(new RegExp(` rate ${r}bit ceil ${r}bit `));
    }
  });

  it('both are children of 4e51:1; the root\'s default (10) is the bulk class', () => {
    const t = lines(renderTc(tree(10e6)));
    expect(t[0]).toBe('qdisc replace dev nqtc0 root handle 4e51: htb default 10');
    expect(classLine(10e6, '4e51:10')).toContain(' parent 4e51:1 classid 4e51:10 ');
    expect(classLine(10e6, '4e51:3')).toContain(' parent 4e51:1 classid 4e51:3 ');
  });

  it('the bulk leaf is sized for the whole rate, the small leaf has a floor of frames, not skbs', () => {
    // 1M: rate x 5 ms = 625 B, below either floor: bulk holds one 3028 B skb and a frame, small two frames
    expect(lines(renderTc(tree(1e6))).filter((l) => l.startsWith('qdisc replace dev nqtc0 parent'))).toEqual([
      'qdisc replace dev nqtc0 parent 4e51:10 handle 5010: bfifo limit 4542',
      'qdisc replace dev nqtc0 parent 4e51:3 handle 5003: bfifo limit 3028',
    ]);
  });

  it('recorded: the kernel holds these rates (tc class show of the shaped veth)', () => {
    const rates = (file: string, dev: string) =>
      parseHtbClassText(fixture(file), dev).map((c) => [c.classid, c.parent, c.rateBytes * 8, c.ceilBytes * 8, c.prio]);
    expect(rates('tc-class-veth-shaped-nqtc0.txt', 'nqtc0')).toEqual(
      expect.arrayContaining([
        ['4e51:1', 'root', 10e6, 10e6, undefined],
        ['4e51:10', '4e51:1', 9.5e6, 10e6, 1],
        ['4e51:3', '4e51:1', 0.5e6, 10e6, 0],
      ]),
    );
    expect(rates('tc-class-veth-shaped-nqi2.txt', 'nqi2')).toEqual(
      expect.arrayContaining([
        ['4e51:1', 'root', 20e6, 20e6, undefined],
        ['4e51:10', '4e51:1', 19e6, 20e6, 1],
        ['4e51:3', '4e51:1', 1e6, 20e6, 0],
      ]),
    );
  });
});

describe('a tree of the old format (root default 1, one leaf 4e52: under 4e51:1)', () => {
  // recorded before 965f097, kept as tc-qdisc-veth-shaped-v1.json (the old text rebuilds it today byte for byte)
  const old = (): Observed => ({
    links: parseIpLinks(fixture('ip-link-veth-shaped.json')),
    qdiscs: parseQdiscs(fixture('tc-qdisc-veth-shaped-v1.json')),
    filters: parseFilters(fixture('tc-filter-veth-ingress-ours.json'), 'nqtc0'),
  });

  it('is the old tree', () => {
    expect(old().qdiscs.filter((q) => q.dev !== 'lo').map((q) => [q.dev, q.kind, q.handle, q.parent, q.options?.default])).toEqual([
      ['nqtc0', 'htb', '4e51:', 'root', '0x1'],
      ['nqtc0', 'bfifo', '4e52:', '4e51:1', undefined],
      ['nqtc0', 'ingress', 'ffff:', 'ffff:fff1', undefined],
      ['nqi2', 'htb', '4e51:', 'root', '0x1'],
      ['nqi2', 'bfifo', '4e52:', '4e51:1', undefined],
    ]);
  });

  it('is rebuilt on apply: each root deleted and created again with the new tree; the hook and redirect stay (verified)', () => {
    const fromFresh = lines(text(plan(BOTH, fresh())).tc);
    const nqtc0 = fromFresh.filter((l) => / dev nqtc0 parent 4e51|dev nqtc0 root /.test(l));
    const nqi2 = fromFresh.filter((l) => / dev nqi2 /.test(l));
    expect(text(plan(BOTH, old()))).toEqual({
      ip: '',
      tc: `${['qdisc del dev nqtc0 root', ...nqtc0, 'qdisc del dev nqi2 root', ...nqi2].join('\n')}\n`,
      ipAfter: '',
    });
    expect(nqtc0[0]).toBe('qdisc replace dev nqtc0 root handle 4e51: htb default 10');
    expect(nqtc0).toHaveLength(8);
    expect(nqi2).toHaveLength(8);
  });

  it('a re-plan of the state the rebuild left (recorded) is the in-place no-op', () => {
    const o: Observed = {
      links: parseIpLinks(fixture('ip-link-veth-shaped.json')),
      qdiscs: parseQdiscs(fixture('tc-qdisc-veth-shaped.json')),
      filters: [
        ...parseFilters(fixture('tc-filter-veth-ingress-ours.json'), 'nqtc0'),
        ...rootFilters('nqtc0', 'tc-filter-veth-root-nqtc0.json'),
        ...rootFilters('nqi2', 'tc-filter-veth-root-nqi2.json'),
      ],
    };
    const t = text(plan(BOTH, o));
    expect(t.ip + t.ipAfter).toBe('');
    expect(lines(t.tc).every((l) => l.startsWith('class replace ') || / parent 4e51:(10|3) handle /.test(l))).toBe(true);
  });
});
