/**
 * Golden plans for classes and unshaped subnets (rendered tc text), and convergence: a re-apply
 * of the state a plan leaves changes nothing, a changed class list replaces only what changed.
 * With or without classes the root's default is 10 (without classes 4e51:10 is the bulk class,
 * beside the small-packet class 4e51:3), so adding or dropping classes keeps the root; only a
 * root of the old format (default 1) is rebuilt (HTB cannot change its default in place).
 * The texts below were applied with the engine on kernel 6.18 / iproute2 6.1 in a throw-away
 * namespace (both tools exited 0; a re-apply left `tc qdisc/class/filter show` byte-identical).
 * Dropping every class and adding them to a tree without classes were run by
 * test/fixtures/kernel/record-shaped.ts (on nqtk0 for eth0): both exited 0 and left exactly the
 * state a fresh apply of the new spec leaves.
 */
import { describe, expect, it } from 'vitest';
import { parseAnnotations } from '../../src/domain/annotations.js';
import { MINIMAL_CAPS, type Filter, type Link, type Observed, type Qdisc } from '../../src/domain/link.js';
import type { QosSpec } from '../../src/domain/spec.js';
import { planApply } from '../../src/plan/apply-plan.js';
import { renderTc } from '../../src/plan/render.js';
import { planRemove } from '../../src/plan/remove-plan.js';
import { u32Match } from '../../src/plan/u32.js';
import { cidrOf } from '../../src/domain/cidr.js';

const LINK: Link = { name: 'eth0', index: 2, kind: 'veth', mtu: 1500, up: true, gsoMaxSize: 65536, tsoMaxSize: 524280 };
const fresh: Observed = { links: [LINK], qdiscs: [] };
const spec = (a: Record<string, string>): QosSpec => parseAnnotations(a)!;
const tc = (s: QosSpec, o: Observed = fresh): string => renderTc(planApply({ spec: s, observed: o, caps: MINIMAL_CAPS }).tc);

const SEED = spec({
  'kubernetes.io/egress-bandwidth': '50M',
  'netqos.io/egress-classes': JSON.stringify([
    { name: 'a', rate: '40M', ceil: '50M', priority: 0, match: { cidr: ['10.1.0.0/16', 'fd00:1::/64'], protocol: 'tcp', port: 5432 } },
    { name: 'b', rate: '10M', match: { cidr: '10.2.0.0/16' } },
  ]),
  'netqos.io/unshaped-subnets': '10.9.0.0/16,fd00:9::/48',
});

const SEED_TC = `qdisc replace dev eth0 root handle 4e51: htb default 10
class replace dev eth0 parent 4e51: classid 4e51:1 htb rate 50000000bit ceil 50000000bit burst 62500b cburst 62500b quantum 6250
class replace dev eth0 parent 4e51:1 classid 4e51:11 htb rate 40000000bit ceil 50000000bit burst 50000b cburst 62500b prio 0 quantum 5000
qdisc replace dev eth0 parent 4e51:11 handle 5011: bfifo limit 25000
class replace dev eth0 parent 4e51:1 classid 4e51:12 htb rate 10000000bit ceil 10000000bit burst 12500b cburst 12500b prio 7 quantum 1514
qdisc replace dev eth0 parent 4e51:12 handle 5012: bfifo limit 7764
class replace dev eth0 parent 4e51:1 classid 4e51:10 htb rate 500000bit ceil 50000000bit burst 3028b cburst 62500b prio 7 quantum 1514
qdisc replace dev eth0 parent 4e51:10 handle 5010: bfifo limit 7764
class replace dev eth0 parent 4e51: classid 4e51:2 htb rate 100000000000bit ceil 100000000000bit burst 125000000b cburst 125000000b quantum 200000
qdisc replace dev eth0 parent 4e51:2 handle 5002: bfifo limit 6250000
filter add dev eth0 parent 4e51: protocol ip prio 1 u32 match ip dst 10.9.0.0/16 flowid 4e51:2
filter add dev eth0 parent 4e51: protocol ipv6 prio 2 u32 match ip6 dst fd00:9::/48 flowid 4e51:2
filter add dev eth0 parent 4e51: protocol ip prio 10 u32 match ip dst 10.1.0.0/16 match ip protocol 6 0xff match ip dport 5432 0xffff flowid 4e51:11
filter add dev eth0 parent 4e51: protocol ipv6 prio 11 u32 match ip6 dst fd00:1::/64 match ip6 protocol 6 0xff match ip6 dport 5432 0xffff flowid 4e51:11
filter add dev eth0 parent 4e51: protocol ip prio 12 u32 match ip dst 10.2.0.0/16 flowid 4e51:12
`;

/** the state SEED_TC leaves, as discovery reads it back */
function shapedBySeed(): Observed {
  const q = (handle: string, parent: string, kind = 'bfifo'): Qdisc => ({ dev: 'eth0', kind, handle, parent });
  const qdiscs: Qdisc[] = [
    { ...q('4e51:', 'root', 'htb'), options: { default: '0x10' } },
    q('5011:', '4e51:11'),
    q('5012:', '4e51:12'),
    q('5010:', '4e51:10'),
    q('5002:', '4e51:2'),
  ];
  const f = (prio: number, protocol: 'ip' | 'ipv6', flowid: string, cidr: string, m = {}, side: 'dst' | 'src' = 'dst'): Filter => ({
    dev: 'eth0', parent: '4e51:', prio, handle: `80${prio}::800`, kind: 'u32', protocol, flowid, keys: u32Match(cidrOf(cidr), side, m).keys,
  });
  const filters = [
    f(1, 'ip', '4e51:2', '10.9.0.0/16'),
    f(2, 'ipv6', '4e51:2', 'fd00:9::/48'),
    f(10, 'ip', '4e51:11', '10.1.0.0/16', { protocol: 'tcp', port: 5432 }),
    f(11, 'ipv6', '4e51:11', 'fd00:1::/64', { protocol: 'tcp', port: 5432 }),
    f(12, 'ip', '4e51:12', '10.2.0.0/16'),
  ];
  return { links: [{ ...LINK, gsoMaxSize: 6250 }], qdiscs, filters };
}

/** the state a 50M egress tree without classes leaves (keys as recorded: tc-filter-veth-root-nqtc0.json) */
function shapedPlain(): Observed {
  const q = (handle: string, parent: string, kind = 'bfifo'): Qdisc => ({ dev: 'eth0', kind, handle, parent });
  return {
    links: [{ ...LINK, gsoMaxSize: 6250 }],
    qdiscs: [{ ...q('4e51:', 'root', 'htb'), options: { default: '0x10' } }, q('5010:', '4e51:10'), q('5003:', '4e51:3')],
    filters: [
      { dev: 'eth0', parent: '4e51:', prio: 3, handle: '800::800', kind: 'u32', protocol: 'ip', flowid: '4e51:3', keys: ['00000000/0000ff00@0'] },
      { dev: 'eth0', parent: '4e51:', prio: 4, handle: '801::800', kind: 'u32', protocol: 'ipv6', flowid: '4e51:3', keys: ['00000000/ff000000@4'] },
    ],
  };
}

describe('golden: classes on egress (seed 000 shape) with unshaped subnets', () => {
  it('exact tc text', () => {
    expect(tc(SEED)).toBe(SEED_TC);
  });

  it('u32 keys as the kernel prints them (recorded from tc -json filter show)', () => {
    expect(u32Match(cidrOf('10.1.0.0/16'), 'dst', { protocol: 'tcp', port: 5432 }).keys).toEqual(['0a010000/ffff0000@16', '00060000/00ff0000@8', '00001538/0000ffff@20']);
    expect(u32Match(cidrOf('fd00:1::/64'), 'dst', { protocol: 'tcp', port: 5432 }).keys).toEqual([
      'fd000001/ffffffff@24', '00000000/ffffffff@28', '00000600/0000ff00@4', '00001538/0000ffff@40',
    ]);
    expect(u32Match(cidrOf('fd00:1::/64'), 'src', { protocol: 'udp', port: 53 }).keys).toEqual([
      'fd000001/ffffffff@8', '00000000/ffffffff@12', '00001100/0000ff00@4', '00350000/ffff0000@40',
    ]);
    expect(u32Match(cidrOf('fd00:9::/48'), 'dst').keys).toEqual(['fd000009/ffffffff@24', '00000000/ffff0000@28']);
    expect(u32Match(cidrOf('::/0'), 'dst').keys).toEqual([]);
    expect(u32Match(cidrOf('0.0.0.0/0'), 'dst').keys).toEqual(['00000000/00000000@16']);
  });

  it('re-apply of the state it leaves: no root, no filter, no delete; only the in-place class and leaf replaces', () => {
    const lines = tc(SEED, shapedBySeed()).split('\n').filter((l) => l !== '');
    expect(lines.every((l) => l.startsWith('class replace') || l.startsWith('qdisc replace dev eth0 parent 4e51:'))).toBe(true);
    expect(lines).toHaveLength(SEED_TC.split('\n').filter((l) => l.startsWith('class') || l.includes(' parent 4e51:') && l.startsWith('qdisc')).length);
  });

  it('a changed class list: its filters are replaced, classes no longer wanted go after their filters', () => {
    const next = spec({
      'kubernetes.io/egress-bandwidth': '50M',
      'netqos.io/egress-classes': JSON.stringify([{ name: 'a', rate: '30M', match: { cidr: ['10.1.0.0/16'] } }]),
    });
    const t = tc(next, shapedBySeed());
    expect(t).toContain('filter del dev eth0 parent 4e51: protocol ip prio 1\n');
    expect(t).toContain('filter del dev eth0 parent 4e51: protocol ipv6 prio 11\n');
    expect(t).toContain('class del dev eth0 classid 4e51:12\n');
    expect(t).toContain('class del dev eth0 classid 4e51:2\n');
    expect(t.indexOf('filter del dev eth0 parent 4e51: protocol ip prio 12')).toBeLessThan(t.indexOf('class del dev eth0 classid 4e51:12'));
    expect(t).toContain('filter add dev eth0 parent 4e51: protocol ip prio 10 u32 match ip dst 10.1.0.0/16 flowid 4e51:11\n');
    expect(t).not.toMatch(/qdisc (del|replace) dev eth0 root/);
  });

  it('dropping every class keeps the root (default 10): the class filters go first, then the bulk and small-packet children replace the classes (verified)', () => {
    expect(tc({ egress: { rateBps: 50e6 } }, shapedBySeed())).toBe(`filter del dev eth0 parent 4e51: protocol ip prio 1
filter del dev eth0 parent 4e51: protocol ipv6 prio 2
filter del dev eth0 parent 4e51: protocol ip prio 10
filter del dev eth0 parent 4e51: protocol ipv6 prio 11
filter del dev eth0 parent 4e51: protocol ip prio 12
class replace dev eth0 parent 4e51: classid 4e51:1 htb rate 50000000bit ceil 50000000bit burst 62500b cburst 62500b quantum 6250
class replace dev eth0 parent 4e51:1 classid 4e51:10 htb rate 47500000bit ceil 50000000bit burst 59375b cburst 62500b prio 1 quantum 5938
qdisc replace dev eth0 parent 4e51:10 handle 5010: bfifo limit 31250
class replace dev eth0 parent 4e51:1 classid 4e51:3 htb rate 2500000bit ceil 50000000bit burst 3125b cburst 62500b prio 0 quantum 1514
qdisc replace dev eth0 parent 4e51:3 handle 5003: bfifo limit 31250
class del dev eth0 classid 4e51:11
class del dev eth0 classid 4e51:12
class del dev eth0 classid 4e51:2
filter add dev eth0 parent 4e51: protocol ip prio 3 u32 match u16 0 0xff00 at 2 flowid 4e51:3
filter add dev eth0 parent 4e51: protocol ipv6 prio 4 u32 match u16 0 0xff00 at 4 flowid 4e51:3
`);
  });

  it('adding classes to a tree without them keeps the root: the small-packet filters and class go, the classes come (verified)', () => {
    expect(tc(SEED, shapedPlain())).toBe(`filter del dev eth0 parent 4e51: protocol ip prio 3
filter del dev eth0 parent 4e51: protocol ipv6 prio 4
class replace dev eth0 parent 4e51: classid 4e51:1 htb rate 50000000bit ceil 50000000bit burst 62500b cburst 62500b quantum 6250
class replace dev eth0 parent 4e51:1 classid 4e51:11 htb rate 40000000bit ceil 50000000bit burst 50000b cburst 62500b prio 0 quantum 5000
qdisc replace dev eth0 parent 4e51:11 handle 5011: bfifo limit 25000
class replace dev eth0 parent 4e51:1 classid 4e51:12 htb rate 10000000bit ceil 10000000bit burst 12500b cburst 12500b prio 7 quantum 1514
qdisc replace dev eth0 parent 4e51:12 handle 5012: bfifo limit 7764
class replace dev eth0 parent 4e51:1 classid 4e51:10 htb rate 500000bit ceil 50000000bit burst 3028b cburst 62500b prio 7 quantum 1514
qdisc replace dev eth0 parent 4e51:10 handle 5010: bfifo limit 7764
class replace dev eth0 parent 4e51: classid 4e51:2 htb rate 100000000000bit ceil 100000000000bit burst 125000000b cburst 125000000b quantum 200000
qdisc replace dev eth0 parent 4e51:2 handle 5002: bfifo limit 6250000
class del dev eth0 classid 4e51:3
filter add dev eth0 parent 4e51: protocol ip prio 1 u32 match ip dst 10.9.0.0/16 flowid 4e51:2
filter add dev eth0 parent 4e51: protocol ipv6 prio 2 u32 match ip6 dst fd00:9::/48 flowid 4e51:2
filter add dev eth0 parent 4e51: protocol ip prio 10 u32 match ip dst 10.1.0.0/16 match ip protocol 6 0xff match ip dport 5432 0xffff flowid 4e51:11
filter add dev eth0 parent 4e51: protocol ipv6 prio 11 u32 match ip6 dst fd00:1::/64 match ip6 protocol 6 0xff match ip6 dport 5432 0xffff flowid 4e51:11
filter add dev eth0 parent 4e51: protocol ip prio 12 u32 match ip dst 10.2.0.0/16 flowid 4e51:12
`);
  });

  it('adding classes to a tree of the old format (default 1) rebuilds its root', () => {
    const old: Observed = {
      links: [LINK],
      qdiscs: [
        { dev: 'eth0', kind: 'htb', handle: '4e51:', parent: 'root', options: { default: '0x1' } },
        { dev: 'eth0', kind: 'bfifo', handle: '4e52:', parent: '4e51:1' },
      ],
    };
    expect(tc(SEED, old)).toBe(`qdisc del dev eth0 root\n${SEED_TC}`);
  });

  it('removal needs nothing new: the root takes classes, leaves and filters with it', () => {
    expect(renderTc(planRemove(shapedBySeed()).tc)).toBe('qdisc del dev eth0 root\n');
  });
});

describe('golden: ingress classes on the ifb, unshaped subnets on the hook before the redirect', () => {
  const s = spec({
    'kubernetes.io/ingress-bandwidth': '50M',
    'netqos.io/ingress-classes': JSON.stringify([{ name: 'dns', rate: '40M', match: { cidr: ['10.1.0.0/16'], protocol: 'udp', port: 53 } }]),
    'netqos.io/unshaped-subnets': '10.9.0.0/16,fd00:9::/48',
  });

  it('exact tc text: match src on the ifb; prio 47/48 pass filters with our flowid, no action', () => {
    expect(tc(s)).toBe(`qdisc replace dev nqi2 root handle 4e51: htb default 10
class replace dev nqi2 parent 4e51: classid 4e51:1 htb rate 50000000bit ceil 50000000bit burst 62500b cburst 62500b quantum 6250
class replace dev nqi2 parent 4e51:1 classid 4e51:11 htb rate 40000000bit ceil 40000000bit burst 50000b cburst 50000b prio 7 quantum 5000
qdisc replace dev nqi2 parent 4e51:11 handle 7011: tbf rate 400000000bit burst 53028b peakrate 100000000000bit mtu 3028 limit 25000
class replace dev nqi2 parent 4e51:1 classid 4e51:10 htb rate 10000000bit ceil 50000000bit burst 12500b cburst 62500b prio 7 quantum 1514
qdisc replace dev nqi2 parent 4e51:10 handle 7010: tbf rate 100000000bit burst 65528b peakrate 100000000000bit mtu 3028 limit 18168
filter add dev nqi2 parent 4e51: protocol ip prio 10 u32 match ip src 10.1.0.0/16 match ip protocol 17 0xff match ip sport 53 0xffff flowid 4e51:11
qdisc add dev eth0 handle ffff: ingress
filter add dev eth0 parent ffff: protocol all prio 49 u32 match u32 0 0 action mirred egress redirect dev nqi2
filter add dev eth0 parent ffff: protocol ip prio 47 u32 match ip src 10.9.0.0/16 flowid ffff:4e51
filter add dev eth0 parent ffff: protocol ipv6 prio 48 u32 match ip6 src fd00:9::/48 flowid ffff:4e51
`);
  });

  it('removal: an ingress hook holding only our redirect and bypass filters goes whole', () => {
    const o: Observed = {
      links: [LINK, { ...LINK, name: 'nqi2', index: 3, kind: 'ifb' }],
      qdiscs: [{ dev: 'eth0', kind: 'ingress', handle: 'ffff:', parent: 'ffff:fff1' }],
      filters: [
        { dev: 'eth0', parent: 'ffff:', prio: 47, handle: '801::800', kind: 'u32', protocol: 'ip', flowid: 'ffff:4e51', keys: [] },
        { dev: 'eth0', parent: 'ffff:', prio: 49, handle: '800::800', kind: 'u32', protocol: 'all', redirectTo: 'nqi2', keys: [] },
      ],
    };
    expect(renderTc(planRemove(o).tc)).toBe('qdisc del dev eth0 ingress\n');
    // beside someone else's filter only our priorities go
    o.filters!.push({ dev: 'eth0', parent: 'ffff:', prio: 10, handle: '802::800', kind: 'u32', protocol: 'ip', keys: [] });
    expect(renderTc(planRemove(o).tc)).toBe('filter del dev eth0 parent ffff: protocol ip prio 47\nfilter del dev eth0 parent ffff: protocol all prio 49\n');
  });
});

describe('without classes or unshaped subnets: bulk and small packets under the limit', () => {
  it('root default 10; 4e51:1 the limit; bulk 4e51:10 (limit - 5 %, prio 1) and small packets 4e51:3 (5 %, prio 0), both ceil = limit; the small-packet filters', () => {
    expect(tc({ egress: { rateBps: 10e6 } })).toBe(`qdisc replace dev eth0 root handle 4e51: htb default 10
class replace dev eth0 parent 4e51: classid 4e51:1 htb rate 10000000bit ceil 10000000bit burst 12500b cburst 12500b quantum 1514
class replace dev eth0 parent 4e51:1 classid 4e51:10 htb rate 9500000bit ceil 10000000bit burst 11875b cburst 12500b prio 1 quantum 1514
qdisc replace dev eth0 parent 4e51:10 handle 5010: bfifo limit 6250
class replace dev eth0 parent 4e51:1 classid 4e51:3 htb rate 500000bit ceil 10000000bit burst 3028b cburst 12500b prio 0 quantum 1514
qdisc replace dev eth0 parent 4e51:3 handle 5003: bfifo limit 6250
filter add dev eth0 parent 4e51: protocol ip prio 3 u32 match u16 0 0xff00 at 2 flowid 4e51:3
filter add dev eth0 parent 4e51: protocol ipv6 prio 4 u32 match u16 0 0xff00 at 4 flowid 4e51:3
`);
  });

  it('the small-packet filters are kept beside unshaped subnets (after them: prio 1/2, then 3/4)', () => {
    const t = tc(spec({ 'kubernetes.io/egress-bandwidth': '10M', 'netqos.io/unshaped-subnets': '10.9.0.0/16' }));
    expect(t.split('\n').filter((l) => l.startsWith('filter '))).toEqual([
      'filter add dev eth0 parent 4e51: protocol ip prio 1 u32 match ip dst 10.9.0.0/16 flowid 4e51:2',
      'filter add dev eth0 parent 4e51: protocol ip prio 3 u32 match u16 0 0xff00 at 2 flowid 4e51:3',
      'filter add dev eth0 parent 4e51: protocol ipv6 prio 4 u32 match u16 0 0xff00 at 4 flowid 4e51:3',
    ]);
  });
});
