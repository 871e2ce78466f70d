/**
 * Golden plans for classes and unshaped subnets (rendered tc text), and convergence: a re-apply
 * of the state a plan leaves changes nothing, a changed class list replaces only what changed,
 * and adding or dropping classes rebuilds the root (HTB cannot change its default in place).
 * The texts below were applied with the engine on kernel 6.18 / iproute2 6.1 in a throw-away
 * namespace (both tools exited 0; a re-apply left `tc qdisc/class/filter show` byte-identical).
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

  it('dropping every class rebuilds the root with default 1 and the single leaf of today', () => {
    expect(tc({ egress: { rateBps: 50e6 } }, shapedBySeed())).toBe(`qdisc del dev eth0 root
qdisc replace dev eth0 root handle 4e51: htb default 1
class replace dev eth0 parent 4e51: classid 4e51:1 htb rate 50000000bit ceil 50000000bit burst 62500b cburst 62500b quantum 6250
qdisc replace dev eth0 parent 4e51:1 handle 4e52: bfifo limit 31250
`);
  });

  it('adding classes to a tree of today rebuilds its root (default 1 -> 10)', () => {
    const today: Observed = { links: [LINK], qdiscs: [{ dev: 'eth0', kind: 'htb', handle: '4e51:', parent: 'root', options: { default: '0x1' } }] };
    expect(tc(SEED, today)).toBe(`qdisc del dev eth0 root\n${SEED_TC}`);
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
qdisc replace dev nqi2 parent 4e51:11 handle 5011: bfifo limit 67050
class replace dev nqi2 parent 4e51:1 classid 4e51:10 htb rate 10000000bit ceil 50000000bit burst 12500b cburst 62500b prio 7 quantum 1514
qdisc replace dev nqi2 parent 4e51:10 handle 5010: bfifo limit 67050
filter add dev nqi2 parent 4e51: protocol ip prio 10 u32 match ip src 10.1.0.0/16 match ip protocol 17 0xff match ip sport 53 0xffff flowid 4e51:11
qdisc replace dev eth0 handle ffff: ingress
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

describe('without classes or unshaped subnets the plan is the text of today', () => {
  it('one class, one leaf, root default 1', () => {
    expect(tc({ egress: { rateBps: 10e6 } })).toBe(`qdisc replace dev eth0 root handle 4e51: htb default 1
class replace dev eth0 parent 4e51: classid 4e51:1 htb rate 10000000bit ceil 10000000bit burst 12500b cburst 12500b quantum 1514
qdisc replace dev eth0 parent 4e51:1 handle 4e52: bfifo limit 6250
`);
  });
});
