/**
 * planApply with per-interface limits (QosSpec.perInterface), as rendered text.
 *
 * "verified": the text was run as written with `ip -batch` / `tc -batch` in a throw-away namespace
 * built like fixture namespace g (nqtd0 ifindex 2 mtu 1500, nqtd1 ifindex 3 mtu 9000; see
 * test/fixtures/kernel/README.txt), both exited 0, and `tc class show` read back the rates; the
 * state it left was recorded as the *-perif-* fixtures. The idempotent re-plan left `tc -json qdisc
 * show` and both devices' filters byte-identical; the update text exited 0 and left exactly nqtd1's
 * 5Mbit tree (nqtd0 unshaped with gso_max_size 65536, no ifb). 2026-11-21. Run again for the tree
 * with bulk and small-packet classes by test/fixtures/kernel/record-shaped.ts (2026-11-22).
 */
import { describe, expect, it } from 'vitest';
import { NetqosError } from '../../src/domain/errors.js';
import { MINIMAL_CAPS, type Link, type Observed } from '../../src/domain/link.js';
import type { QosSpec } from '../../src/domain/spec.js';
import { planApply } from '../../src/plan/apply-plan.js';
import type { Plan } from '../../src/plan/ops.js';
import { parseIpLinks } from '../../src/plan/parse-ip.js';
import { parseFilters, parseQdiscs } from '../../src/plan/parse-tc.js';
import { planRemove } from '../../src/plan/remove-plan.js';
import { renderIp, renderTc } from '../../src/plan/render.js';
import { fixture } from '../support/kernel-fixtures.js';

const text = (p: Plan) => ({ ip: renderIp(p.ip), tc: renderTc(p.tc), ipAfter: renderIp(p.ipAfter) });
const plan = (spec: QosSpec, observed: Observed) => planApply({ spec, observed, caps: MINIMAL_CAPS });

const fresh = (): Observed => ({
  links: parseIpLinks(fixture('ip-link-two-veth-fresh.json')),
  qdiscs: parseQdiscs(fixture('tc-qdisc-two-veth-fresh.json')),
});
/** as discover() reads it: the hooks' filters and our roots' (the small-packet filters) */
const shaped = (): Observed => ({
  links: parseIpLinks(fixture('ip-link-two-veth-perif-shaped.json')),
  qdiscs: parseQdiscs(fixture('tc-qdisc-two-veth-perif-shaped.json')),
  filters: [
    ...parseFilters(fixture('tc-filter-perif-nqtd0-ours.json'), 'nqtd0'),
    ...parseFilters(fixture('tc-filter-perif-nqtd1-ours.json'), 'nqtd1'),
    ...['nqtd0', 'nqtd1', 'nqi2', 'nqi3'].flatMap((d) => parseFilters(fixture(`tc-filter-perif-root-${d}.json`), d, '4e51:')),
  ],
});

/** pod-wide egress 10M + ingress 20M; nqtd1 overridden to egress 30M, ingress 40M with a 1M burst */
const MIXED: QosSpec = {
  egress: { rateBps: 10e6 },
  ingress: { rateBps: 20e6 },
  perInterface: { nqtd1: { egress: { rateBps: 30e6 }, ingress: { rateBps: 40e6, burstBits: 1e6 } } },
};

const NQTD0_TREES = `qdisc replace dev nqtd0 root handle 4e51: htb default 10
class replace dev nqtd0 parent 4e51: classid 4e51:1 htb rate 10000000bit ceil 10000000bit burst 12500b cburst 12500b quantum 1514
class replace dev nqtd0 parent 4e51:1 classid 4e51:10 htb rate 9500000bit ceil 10000000bit burst 11875b cburst 12500b prio 1 quantum 1514
qdisc replace dev nqtd0 parent 4e51:10 handle 5010: bfifo limit 6250
class replace dev nqtd0 parent 4e51:1 classid 4e51:3 htb rate 500000bit ceil 10000000bit burst 3028b cburst 12500b prio 0 quantum 1514
qdisc replace dev nqtd0 parent 4e51:3 handle 5003: bfifo limit 6250
filter add dev nqtd0 parent 4e51: protocol ip prio 3 u32 match u16 0 0xff00 at 2 flowid 4e51:3
filter add dev nqtd0 parent 4e51: protocol ipv6 prio 4 u32 match u16 0 0xff00 at 4 flowid 4e51:3
qdisc replace dev nqi2 root handle 4e51: htb default 10
class replace dev nqi2 parent 4e51: classid 4e51:1 htb rate 20000000bit ceil 20000000bit burst 25000b cburst 25000b quantum 2500
class replace dev nqi2 parent 4e51:1 classid 4e51:10 htb rate 19000000bit ceil 20000000bit burst 23750b cburst 25000b prio 1 quantum 2375
qdisc replace dev nqi2 parent 4e51:10 handle 7010: tbf rate 200000000bit burst 28028b peakrate 100000000000bit mtu 3028 limit 18168
class replace dev nqi2 parent 4e51:1 classid 4e51:3 htb rate 1000000bit ceil 20000000bit burst 3028b cburst 25000b prio 0 quantum 1514
qdisc replace dev nqi2 parent 4e51:3 handle 5003: bfifo limit 12500
filter add dev nqi2 parent 4e51: protocol ip prio 3 u32 match u16 0 0xff00 at 2 flowid 4e51:3
filter add dev nqi2 parent 4e51: protocol ipv6 prio 4 u32 match u16 0 0xff00 at 4 flowid 4e51:3
qdisc add dev nqtd0 handle ffff: ingress
filter add dev nqtd0 parent ffff: protocol all prio 49 u32 match u32 0 0 action mirred egress redirect dev nqi2
`;
/** limit 4e51:1, bulk 4e51:10 and small packets 4e51:3 (with the 1M burst as the children's cburst on nqi3) */
const NQTD1_CLASSES = `class replace dev nqtd1 parent 4e51: classid 4e51:1 htb rate 30000000bit ceil 30000000bit burst 37500b cburst 37500b quantum 9014
class replace dev nqtd1 parent 4e51:1 classid 4e51:10 htb rate 28500000bit ceil 30000000bit burst 35625b cburst 37500b prio 1 quantum 9014
qdisc replace dev nqtd1 parent 4e51:10 handle 5010: bfifo limit 27042
class replace dev nqtd1 parent 4e51:1 classid 4e51:3 htb rate 1500000bit ceil 30000000bit burst 18028b cburst 37500b prio 0 quantum 9014
qdisc replace dev nqtd1 parent 4e51:3 handle 5003: bfifo limit 18750
`;
const NQI3_CLASSES = `class replace dev nqi3 parent 4e51: classid 4e51:1 htb rate 40000000bit ceil 40000000bit burst 125000b cburst 125000b quantum 9014
class replace dev nqi3 parent 4e51:1 classid 4e51:10 htb rate 38000000bit ceil 40000000bit burst 47500b cburst 125000b prio 1 quantum 9014
qdisc replace dev nqi3 parent 4e51:10 handle 7010: tbf rate 400000000bit burst 143028b peakrate 100000000000bit mtu 18028 limit 108168
class replace dev nqi3 parent 4e51:1 classid 4e51:3 htb rate 2000000bit ceil 40000000bit burst 18028b cburst 125000b prio 0 quantum 9014
qdisc replace dev nqi3 parent 4e51:3 handle 5003: bfifo limit 25000
`;
const smallFilters = (dev: string): string => `filter add dev ${dev} parent 4e51: protocol ip prio 3 u32 match u16 0 0xff00 at 2 flowid 4e51:3
filter add dev ${dev} parent 4e51: protocol ipv6 prio 4 u32 match u16 0 0xff00 at 4 flowid 4e51:3
`;

describe('golden: two veths, nqtd1 overridden in both directions', () => {
  it('exact text (verified on the kernel): nqtd0 pod-wide, nqtd1 its own rates and burst, one ifb each', () => {
    expect(text(plan(MIXED, fresh()))).toEqual({
      ip: `link set dev nqtd0 gso_max_size 3028
link add nqi2 mtu 1500 up type ifb
link set dev nqtd1 gso_max_size 18028
link add nqi3 mtu 9000 up type ifb
`,
      tc: `${NQTD0_TREES}qdisc replace dev nqtd1 root handle 4e51: htb default 10
${NQTD1_CLASSES}${smallFilters('nqtd1')}qdisc replace dev nqi3 root handle 4e51: htb default 10
${NQI3_CLASSES}${smallFilters('nqi3')}qdisc add dev nqtd1 handle ffff: ingress
filter add dev nqtd1 parent ffff: protocol all prio 49 u32 match u32 0 0 action mirred egress redirect dev nqi3
`,
      ipAfter: '',
    });
  });

  it('reports each interface with its own rate', () => {
    expect(plan(MIXED, fresh()).shaped.map((s) => [s.dev, s.direction, s.shapedOn, s.rateBps, s.burstBytes])).toEqual([
      ['nqtd0', 'egress', 'nqtd0', 10e6, 12_500],
      ['nqtd0', 'ingress', 'nqi2', 20e6, 25_000],
      ['nqtd1', 'egress', 'nqtd1', 30e6, 37_500],
      ['nqtd1', 'ingress', 'nqi3', 40e6, 125_000],
    ]);
  });

  it('idempotent on the state it left (verified: a no-op)', () => {
    expect(text(plan(MIXED, shaped()))).toEqual({
      ip: '',
      tc: `class replace dev nqtd0 parent 4e51: classid 4e51:1 htb rate 10000000bit ceil 10000000bit burst 12500b cburst 12500b quantum 1514
class replace dev nqtd0 parent 4e51:1 classid 4e51:10 htb rate 9500000bit ceil 10000000bit burst 11875b cburst 12500b prio 1 quantum 1514
qdisc replace dev nqtd0 parent 4e51:10 handle 5010: bfifo limit 6250
class replace dev nqtd0 parent 4e51:1 classid 4e51:3 htb rate 500000bit ceil 10000000bit burst 3028b cburst 12500b prio 0 quantum 1514
qdisc replace dev nqtd0 parent 4e51:3 handle 5003: bfifo limit 6250
class replace dev nqi2 parent 4e51: classid 4e51:1 htb rate 20000000bit ceil 20000000bit burst 25000b cburst 25000b quantum 2500
class replace dev nqi2 parent 4e51:1 classid 4e51:10 htb rate 19000000bit ceil 20000000bit burst 23750b cburst 25000b prio 1 quantum 2375
qdisc replace dev nqi2 parent 4e51:10 handle 7010: tbf rate 200000000bit burst 28028b peakrate 100000000000bit mtu 3028 limit 18168
class replace dev nqi2 parent 4e51:1 classid 4e51:3 htb rate 1000000bit ceil 20000000bit burst 3028b cburst 25000b prio 0 quantum 1514
qdisc replace dev nqi2 parent 4e51:3 handle 5003: bfifo limit 12500
${NQTD1_CLASSES}${NQI3_CLASSES}`,
      ipAfter: '',
    });
  });

  it('removal takes both trees and both ifbs', () => {
    expect(text(planRemove(shaped()))).toEqual({
      ip: '',
      tc: 'qdisc del dev nqtd0 ingress\nqdisc del dev nqtd0 root\nqdisc del dev nqtd1 ingress\nqdisc del dev nqtd1 root\n',
      ipAfter: 'link set dev nqtd0 gso_max_size 65536\nlink set dev nqtd1 gso_max_size 65536\nlink del dev nqi2\nlink del dev nqi3\n',
    });
  });
});

describe('only a per-interface limit: nothing pod-wide', () => {
  const ONLY: QosSpec = { perInterface: { nqtd1: { egress: { rateBps: 5e6 } } } };

  it('on a fresh namespace: only nqtd1 egress, no ifb, nqtd0 untouched', () => {
    expect(text(plan(ONLY, fresh()))).toEqual({
      ip: 'link set dev nqtd1 gso_max_size 18028\n',
      tc: `qdisc replace dev nqtd1 root handle 4e51: htb default 10
class replace dev nqtd1 parent 4e51: classid 4e51:1 htb rate 5000000bit ceil 5000000bit burst 18028b cburst 18028b quantum 9014
class replace dev nqtd1 parent 4e51:1 classid 4e51:10 htb rate 4750000bit ceil 5000000bit burst 18028b cburst 18028b prio 1 quantum 9014
qdisc replace dev nqtd1 parent 4e51:10 handle 5010: bfifo limit 27042
class replace dev nqtd1 parent 4e51:1 classid 4e51:3 htb rate 250000bit ceil 5000000bit burst 18028b cburst 18028b prio 0 quantum 9014
qdisc replace dev nqtd1 parent 4e51:3 handle 5003: bfifo limit 18028
filter add dev nqtd1 parent 4e51: protocol ip prio 3 u32 match u16 0 0xff00 at 2 flowid 4e51:3
filter add dev nqtd1 parent 4e51: protocol ipv6 prio 4 u32 match u16 0 0xff00 at 4 flowid 4e51:3
`,
      ipAfter: '',
    });
  });

  it('as an update of the mixed state (verified): everything else of ours goes, nqtd1 egress is re-rated in place', () => {
    expect(text(plan(ONLY, shaped()))).toEqual({
      ip: '',
      tc: `qdisc del dev nqtd0 root
qdisc del dev nqtd0 ingress
class replace dev nqtd1 parent 4e51: classid 4e51:1 htb rate 5000000bit ceil 5000000bit burst 18028b cburst 18028b quantum 9014
class replace dev nqtd1 parent 4e51:1 classid 4e51:10 htb rate 4750000bit ceil 5000000bit burst 18028b cburst 18028b prio 1 quantum 9014
qdisc replace dev nqtd1 parent 4e51:10 handle 5010: bfifo limit 27042
class replace dev nqtd1 parent 4e51:1 classid 4e51:3 htb rate 250000bit ceil 5000000bit burst 18028b cburst 18028b prio 0 quantum 9014
qdisc replace dev nqtd1 parent 4e51:3 handle 5003: bfifo limit 18028
qdisc del dev nqtd1 ingress
`,
      ipAfter: 'link set dev nqtd0 gso_max_size 65536\nlink del dev nqi2\nlink del dev nqi3\n',
    });
  });
});

describe('an override replaces one direction of one interface', () => {
  it('ingress override only: nqtd1 egress stays pod-wide', () => {
    const p = plan({ egress: { rateBps: 10e6 }, ingress: { rateBps: 20e6 }, perInterface: { nqtd1: { ingress: { rateBps: 3e6 } } } }, fresh());
    expect(p.shaped.map((s) => [s.dev, s.direction, s.rateBps])).toEqual([
      ['nqtd0', 'egress', 10e6],
      ['nqtd0', 'ingress', 20e6],
      ['nqtd1', 'egress', 10e6],
      ['nqtd1', 'ingress', 3e6],
    ]);
  });

  it('an override adds a direction the pod-wide limits lack, on its interface only', () => {
    const p = plan({ egress: { rateBps: 10e6 }, perInterface: { nqtd0: { ingress: { rateBps: 7e6 } } } }, fresh());
    expect(p.shaped.map((s) => [s.dev, s.direction, s.shapedOn, s.rateBps])).toEqual([
      ['nqtd0', 'egress', 'nqtd0', 10e6],
      ['nqtd0', 'ingress', 'nqi2', 7e6],
      ['nqtd1', 'egress', 'nqtd1', 10e6],
    ]);
    expect(text(p).ip).not.toMatch(/nqi3/);
  });

  it('with netqos.io/interfaces: only the listed interface, with its override', () => {
    const p = plan({ egress: { rateBps: 10e6 }, interfaces: ['nqtd1'], perInterface: { nqtd1: { egress: { rateBps: 2e6 } } } }, fresh());
    expect(p.shaped.map((s) => [s.dev, s.direction, s.rateBps])).toEqual([['nqtd1', 'egress', 2e6]]);
  });
});

describe('an override naming an interface that cannot be shaped', () => {
  function failure(spec: QosSpec, o: Observed = fresh()): NetqosError {
    try {
      plan(spec, o);
    } catch (e) {
      expect(e).toBeInstanceOf(NetqosError);
      return e as NetqosError;
    }
    throw new Error('planned');
  }

  it('an interface the namespace does not have -> NOT_FOUND listing the ones it has (no lo, no ifb)', () => {
    const e = failure({ egress: { rateBps: 10e6 }, perInterface: { net1: { egress: { rateBps: 5e6 } } } }, shaped());
    expect(e.code).toBe('NOT_FOUND');
    expect(e.message).toBe(
      'the per-interface limit netqos.io/net1.* names net1, which the container does not have; its interfaces are: nqtd0, nqtd1',
    );
  });

  it('loopback or an ifb -> INVALID_ANNOTATION', () => {
    expect(failure({ perInterface: { lo: { egress: { rateBps: 5e6 } } } }).message).toBe(
      'the per-interface limit netqos.io/lo.* names lo, a loopback device, which is never shaped; use one of: nqtd0, nqtd1',
    );
    expect(failure({ perInterface: { nqi2: { egress: { rateBps: 5e6 } } } }, shaped()).code).toBe('INVALID_ANNOTATION');
  });

  it('an interface netqos.io/interfaces does not list -> INVALID_ANNOTATION (the parser says so first; this guards other front ends)', () => {
    const e = failure({ egress: { rateBps: 10e6 }, interfaces: ['nqtd0'], perInterface: { nqtd1: { egress: { rateBps: 5e6 } } } });
    expect(e.code).toBe('INVALID_ANNOTATION');
    expect(e.message).toBe(
      'the per-interface limit netqos.io/nqtd1.* names nqtd1, which netqos.io/interfaces (nqtd0) does not list; add it there or drop the limit',
    );
  });

  it('a device of a kind not shaped by default (a bridge) is shaped when an override names it', () => {
    const o: Observed = { links: parseIpLinks(fixture('ip-link-host-bridge.json')), qdiscs: [] };
    const p = plan({ perInterface: { nqtbr0: { egress: { rateBps: 5e6 } } } }, o);
    expect(p.shaped.map((s) => [s.dev, s.direction, s.rateBps])).toEqual([['nqtbr0', 'egress', 5e6]]);
  });
});

describe('many interfaces: one ifb each, named from the ifindex, never shared', () => {
  // twelve veths with scattered ifindexes, as a pod with many networks has them
  const indexes = [2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377];
  const links: Link[] = [
    { name: 'lo', index: 1, kind: 'loopback', mtu: 65536, up: true, gsoMaxSize: 65536, tsoMaxSize: 524280 },
    ...indexes.map((index, i): Link => ({
      name: i === 0 ? 'eth0' : `net${i}`,
      index,
      kind: 'veth',
      mtu: 1500,
      up: true,
      gsoMaxSize: 65536,
      tsoMaxSize: 524280,
    })),
  ];
  const spec: QosSpec = {
    egress: { rateBps: 10e6 },
    ingress: { rateBps: 20e6 },
    perInterface: {
      net3: { egress: { rateBps: 3e6 }, ingress: { rateBps: 4e6 } },
      net7: { ingress: { rateBps: 70e6 } },
      net11: { egress: { rateBps: 110e6 } },
    },
  };
  const p = plan(spec, { links, qdiscs: [] });

  it('twelve distinct ifbs nqi<ifindex>', () => {
    const ifbs = p.ip.filter((op) => op.verb === 'add').map((op) => op.name);
    expect(ifbs).toEqual(indexes.map((i) => `nqi${i}`));
    expect(new Set(ifbs).size).toBe(12);
    // the redirects on the hooks (our roots' small-packet filters are on parent 4e51:)
    const redirects = p.tc.filter((op) => op.object === 'filter' && op.parent !== '4e51:').map((op) => renderTc([op]));
    expect(redirects).toHaveLength(12);
    links.slice(1).forEach((l, i) => expect(redirects[i]).toMatch(new RegExp(`dev ${l.name} .* redirect dev nqi${l.index}\\n$`)));
  });

  it('each interface has the rates meant for it', () => {
    const want = (name: string, dir: 'egress' | 'ingress') => spec.perInterface?.[name]?.[dir]?.rateBps ?? spec[dir]!.rateBps;
    const expected = links.slice(1).flatMap((l) => [
      [l.name, 'egress', l.name, want(l.name, 'egress')],
      [l.name, 'ingress', `nqi${l.index}`, want(l.name, 'ingress')],
    ]);
    expect(p.shaped.map((s) => [s.dev, s.direction, s.shapedOn, s.rateBps])).toEqual(expected);
    expect(expected.filter(([, , , r]) => r !== 10e6 && r !== 20e6)).toHaveLength(4);
  });

  it('the largest ifindex still gives a legal name (IFNAMSIZ)', () => {
    const big: Link = { ...links[1]!, name: 'net99', index: 2 ** 31 - 1 };
    const q = plan({ ingress: { rateBps: 1e6 }, perInterface: { net99: { ingress: { rateBps: 2e6 } } } }, { links: [big], qdiscs: [] });
    expect(q.ip.find((op) => op.verb === 'add')?.name).toBe('nqi2147483647');
    expect('nqi2147483647'.length).toBeLessThanOrEqual(15);
  });
});
