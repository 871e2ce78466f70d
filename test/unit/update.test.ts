/**
 * Live updates, pure parts: the flags/fields -> QosUpdate readers and their one-line refusals,
 * how updates merge and apply to the spec in force, reading the spec in force back from kernel
 * output (derived vs user burst, queue latency from the leaf), and the update plan as golden
 * text: class and leaf replace only (no qdisc delete, no root, no ifb, no redirect).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { NetqosError } from '../../src/domain/errors.js';
import { MINIMAL_CAPS, type Filter, type Observed } from '../../src/domain/link.js';
import { applyUpdate, mergeUpdates, readUpdate, type QosUpdate } from '../../src/domain/update.js';
import { currentSpecs } from '../../src/plan/current-spec.js';
import { parseHtbClassText } from '../../src/plan/parse-class.js';
import type { QdiscStats } from '../../src/plan/parse-tc.js';
import { renderIp, renderTc } from '../../src/plan/render.js';
import { planUpdate } from '../../src/plan/update-plan.js';

const flag = (f: string): string => `--${f}`;

function rejection(fn: () => unknown): NetqosError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(NetqosError);
    expect((e as Error).message).not.toContain('\n');
    return e as NetqosError;
  }
  throw new Error('expected a rejection');
}

describe('readUpdate', () => {
  it.each([
    [{ egress: '20M' }, { egress: { rateBps: 20e6 } }],
    [{ 'ingress-burst': '100k' }, { ingress: { burstBits: 100e3 } }],
    [{ egress: '1Gi', 'egress-burst': '1M', 'queue-latency': '2ms' }, { egress: { rateBps: 2 ** 30, burstBits: 1e6 }, queueLatencyUs: 2000 }],
  ])('%j', (fields, want) => {
    expect(readUpdate(fields, flag)).toEqual(want);
  });

  it.each([
    [{ egress: '10 M' }, 'invalid --egress "10 M": not a Kubernetes quantity; use a value such as "10M" (10 Mbit/s) or "1Gi"'],
    [{ ingress: '10m' }, 'invalid --ingress "10m": below the minimum of 1k bit/s (a lowercase "m" means milli); use a value such as "10M" (10 Mbit/s) or "1Gi"'],
    [{ 'egress-burst': '2P' }, 'invalid --egress-burst "2P": above the maximum of 1P bits; use a value in bits such as "100k" or "1M" (125 kB)'],
    [{ 'queue-latency': '2s' }, 'invalid --queue-latency "2s": above the maximum of 1s; use a duration from 100us to 1s such as "5ms" or "500us"'],
    [{}, 'nothing to update: give at least one of --egress, --ingress, --egress-burst, --ingress-burst, --queue-latency'],
  ])('refuses %j', (fields, message) => {
    const e = rejection(() => readUpdate(fields, flag));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toBe(message);
  });
});

describe('mergeUpdates and applyUpdate', () => {
  it('later fields win, field by field', () => {
    const a: QosUpdate = { egress: { rateBps: 20e6, burstBits: 1e5 }, queueLatencyUs: 1000 };
    const b: QosUpdate = { egress: { rateBps: 30e6 }, ingress: { rateBps: 5e6 } };
    expect(mergeUpdates(a, b)).toEqual({ egress: { rateBps: 30e6, burstBits: 1e5 }, ingress: { rateBps: 5e6 }, queueLatencyUs: 1000 });
  });

  it('changes only what is given and keeps a user burst with a new rate', () => {
    const now = { egress: { rateBps: 10e6, burstBits: 4e5 }, ingress: { rateBps: 20e6 }, interfaces: ['eth0'] };
    expect(applyUpdate(now, { egress: { rateBps: 30e6 } }, 'x')).toEqual({ ...now, egress: { rateBps: 30e6, burstBits: 4e5 } });
    expect(applyUpdate(now, { ingress: { burstBits: 8e5 }, queueLatencyUs: 700 }, 'x')).toEqual({
      ...now,
      ingress: { rateBps: 20e6, burstBits: 8e5 },
      queueLatencyUs: 700,
    });
  });

  it('refuses a direction that is not shaped (NOT_FOUND)', () => {
    const e = rejection(() => applyUpdate({ egress: { rateBps: 1e7 } }, { ingress: { rateBps: 2e7 } }, 'pod a/b'));
    expect(e.code).toBe('NOT_FOUND');
    expect(e.message).toBe('pod a/b: ingress is not shaped, so there is no ingress limit to update; netqos update only changes limits in force (shape a new direction with netqos apply)');
  });
});

// ---------------------------------------------------------------------------------------------
// a veth namespace as netqos shaped it: eth0 (ifindex 2) egress 10M, its ifb nqi2 ingress 20M

const LINKS: Observed['links'] = [
  { name: 'lo', index: 1, kind: 'loopback', mtu: 65536, up: true, gsoMaxSize: 65536, tsoMaxSize: 65536 },
  { name: 'eth0', index: 2, kind: 'veth', mtu: 1500, up: true, gsoMaxSize: 3028, tsoMaxSize: 65536 },
  { name: 'nqi2', index: 3, kind: 'ifb', mtu: 1500, up: true, gsoMaxSize: 65536, tsoMaxSize: 65536 },
];
// the tree without classes: the limit 4e51:1, bulk 4e51:10 (the root's default) and small packets 4e51:3
const q = (dev: string, kind: string, handle: string, parent: string, options: Record<string, unknown> = {}): QdiscStats => ({ dev, kind, handle, parent, options });
const QDISCS = [
  q('eth0', 'htb', '4e51:', 'root', { r2q: 10, default: '0x10' }),
  q('eth0', 'bfifo', '5010:', '4e51:10', { limit: 6250 }),
  q('eth0', 'bfifo', '5003:', '4e51:3', { limit: 6250 }),
  q('eth0', 'ingress', 'ffff:', 'ffff:fff1'),
  q('nqi2', 'htb', '4e51:', 'root', { r2q: 10, default: '0x10' }),
  // tc -json prints a tbf's rate (bytes/s), burst and latency, not its limit
  q('nqi2', 'tbf', '7010:', '4e51:10', { rate: 25_000_000, burst: 28025, minburst: 0, lat: 1 }),
  q('nqi2', 'bfifo', '5003:', '4e51:3', { limit: 12500 }),
];
/** the small-packet filters on our roots, keys as recorded (tc-filter-veth-root-nqtc0.json) */
const smallFilters = (dev: string): Filter[] => [
  { dev, parent: '4e51:', prio: 3, handle: '800::800', kind: 'u32', protocol: 'ip', flowid: '4e51:3', keys: ['00000000/0000ff00@0'] },
  { dev, parent: '4e51:', prio: 4, handle: '801::800', kind: 'u32', protocol: 'ipv6', flowid: '4e51:3', keys: ['00000000/ff000000@4'] },
];
const REDIRECT: Filter = { dev: 'eth0', parent: 'ffff:', prio: 49, handle: '800::800', kind: 'u32', redirectTo: 'nqi2' };
const SHAPED: Observed = { links: LINKS, qdiscs: QDISCS, filters: [REDIRECT, ...smallFilters('eth0'), ...smallFilters('nqi2')] };
/** as iproute2 6.1 prints them: recorded on the shaped veth (test/fixtures/kernel/README.txt) */
const recorded = (name: string): string => readFileSync(new URL(`../fixtures/kernel/${name}`, import.meta.url), 'utf8');
const classes = (eth0: string, ifb: string) =>
  new Map([
    ['eth0', parseHtbClassText(eth0, 'eth0')],
    ['nqi2', parseHtbClassText(ifb, 'nqi2')],
  ]);
const EGRESS_CLASSES = recorded('tc-class-veth-shaped-nqtc0.txt');
const INGRESS_CLASSES = recorded('tc-class-veth-shaped-nqi2.txt');
const CLASSES = classes(EGRESS_CLASSES, INGRESS_CLASSES);
const qdiscMap = (list: QdiscStats[]) => new Map(['eth0', 'nqi2'].map((d) => [d, list.filter((x) => x.dev === d)]));
const base = { observed: SHAPED, classes: CLASSES, qdiscs: qdiscMap(QDISCS), defaultLatencyUs: 5000, caps: MINIMAL_CAPS, target: 'netns /run/netns/c' };

describe('currentSpecs', () => {
  it('reads rates back; derived bursts and the default latency stay implicit', () => {
    expect(currentSpecs(base)).toEqual(new Map([['eth0', { interfaces: ['eth0'], egress: { rateBps: 10e6 }, ingress: { rateBps: 20e6 } }]]));
  });

  it('keeps a user burst (tc prints it rounded) and reads the latency from a bfifo above its floor', () => {
    // a 48 KiB burst on the limit class; the bulk leaf holds 10 ms (the small-packet leaf too)
    const cls = classes(
      EGRESS_CLASSES.replace('4e51:1 root rate 10Mbit ceil 10Mbit burst 12500b cburst 12500b', '4e51:1 root rate 10Mbit ceil 10Mbit burst 48Kb cburst 48Kb'),
      INGRESS_CLASSES,
    );
    expect(cls.get('eth0')?.find((c) => c.classid === '4e51:1')?.burstBytes).toBe(48 * 1024);
    const leaves = QDISCS.map((x) => (x.dev === 'eth0' && x.kind === 'bfifo' ? { ...x, options: { limit: 12500 } } : x));
    expect(currentSpecs({ ...base, classes: cls, qdiscs: qdiscMap(leaves) }).get('eth0')).toEqual({
      interfaces: ['eth0'],
      egress: { rateBps: 10e6, burstBits: 48 * 1024 * 8 },
      ingress: { rateBps: 20e6 },
      queueLatencyUs: 10_000,
    });
  });

  it('a leaf at its floor says nothing about the latency', () => {
    // 1M: 5 ms would be 625 bytes, below one 3028-byte skb plus a frame
    const cls = classes(
      'class htb 4e51:10 parent 4e51:1 leaf 5010: prio 1 rate 950Kbit ceil 1Mbit burst 3028b cburst 3028b \n' +
        'class htb 4e51:1 root rate 1Mbit ceil 1Mbit burst 3028b cburst 3028b \n' +
        'class htb 4e51:3 parent 4e51:1 leaf 5003: prio 0 rate 50Kbit ceil 1Mbit burst 3028b cburst 3028b \n',
      '',
    );
    const leaves = [
      q('eth0', 'htb', '4e51:', 'root', { default: '0x10' }),
      q('eth0', 'bfifo', '5010:', '4e51:10', { limit: 4542 }),
      q('eth0', 'bfifo', '5003:', '4e51:3', { limit: 3028 }),
    ];
    const observed = { links: LINKS.slice(0, 2), qdiscs: leaves };
    expect(currentSpecs({ ...base, observed, classes: cls, qdiscs: qdiscMap(leaves) }).get('eth0')).toEqual({ interfaces: ['eth0'], egress: { rateBps: 1e6 } });
  });

  it('ingress only, bulk leaf a segmenting tbf (no limit in tc -json): the small-packet leaf tells the latency', () => {
    // 200M with 2 ms: the small leaf holds 50 000 bytes (the rate x 2 ms, above its two-frame floor)
    const cls = classes(
      '',
      'class htb 4e51:10 parent 4e51:1 leaf 7010: prio 1 rate 190Mbit ceil 200Mbit burst 237500b cburst 250000b \n' +
        'class htb 4e51:1 root rate 200Mbit ceil 200Mbit burst 250000b cburst 250000b \n' +
        'class htb 4e51:3 parent 4e51:1 leaf 5003: prio 0 rate 10Mbit ceil 200Mbit burst 12500b cburst 250000b \n' +
        'class tbf 7010:1 parent 7010: \n',
    );
    const leaves = [
      q('nqi2', 'htb', '4e51:', 'root', { default: '0x10' }),
      q('nqi2', 'tbf', '7010:', '4e51:10', { rate: 250_000_000, burst: 253025, minburst: 0, lat: 0 }),
      q('nqi2', 'bfifo', '5003:', '4e51:3', { limit: 50_000 }),
    ];
    const observed = { links: LINKS, qdiscs: leaves };
    expect(currentSpecs({ ...base, observed, classes: cls, qdiscs: qdiscMap(leaves) }).get('eth0')).toEqual({
      interfaces: ['eth0'],
      ingress: { rateBps: 200e6 },
      queueLatencyUs: 2000,
    });
  });
});

describe('planUpdate (golden)', () => {
  it('a new egress rate: the classes and the leaves change in place, nothing else', () => {
    const r = planUpdate({ ...base, update: { egress: { rateBps: 30e6 } } });
    expect(renderIp(r.plan.ip)).toBe('link set dev eth0 gso_max_size 3750\n');
    expect(renderTc(r.plan.tc)).toBe(
      'class replace dev eth0 parent 4e51: classid 4e51:1 htb rate 30000000bit ceil 30000000bit burst 37500b cburst 37500b quantum 3750\n' +
        'class replace dev eth0 parent 4e51:1 classid 4e51:10 htb rate 28500000bit ceil 30000000bit burst 35625b cburst 37500b prio 1 quantum 3563\n' +
        'qdisc replace dev eth0 parent 4e51:10 handle 5010: bfifo limit 18750\n' +
        'class replace dev eth0 parent 4e51:1 classid 4e51:3 htb rate 1500000bit ceil 30000000bit burst 3028b cburst 37500b prio 0 quantum 1514\n' +
        'qdisc replace dev eth0 parent 4e51:3 handle 5003: bfifo limit 18750\n' +
        'class replace dev nqi2 parent 4e51: classid 4e51:1 htb rate 20000000bit ceil 20000000bit burst 25000b cburst 25000b quantum 2500\n' +
        'class replace dev nqi2 parent 4e51:1 classid 4e51:10 htb rate 19000000bit ceil 20000000bit burst 23750b cburst 25000b prio 1 quantum 2375\n' +
        'qdisc replace dev nqi2 parent 4e51:10 handle 7010: tbf rate 200000000bit burst 28028b peakrate 100000000000bit mtu 3028 limit 18168\n' +
        'class replace dev nqi2 parent 4e51:1 classid 4e51:3 htb rate 1000000bit ceil 20000000bit burst 3028b cburst 25000b prio 0 quantum 1514\n' +
        'qdisc replace dev nqi2 parent 4e51:3 handle 5003: bfifo limit 12500\n',
    );
    expect(r.plan.ipAfter).toEqual([]);
    expect(r.after.get('eth0')).toEqual({ interfaces: ['eth0'], egress: { rateBps: 30e6 }, ingress: { rateBps: 20e6 } });
  });

  it('a new ingress rate and latency: no ifb, no redirect, no root, no delete', () => {
    const r = planUpdate({ ...base, update: { ingress: { rateBps: 200e6 }, queueLatencyUs: 2000 } });
    expect(r.plan.ip).toEqual([]);
    const tc = renderTc(r.plan.tc);
    expect(tc).toBe(
      'class replace dev eth0 parent 4e51: classid 4e51:1 htb rate 10000000bit ceil 10000000bit burst 12500b cburst 12500b quantum 1514\n' +
        'class replace dev eth0 parent 4e51:1 classid 4e51:10 htb rate 9500000bit ceil 10000000bit burst 11875b cburst 12500b prio 1 quantum 1514\n' +
        'qdisc replace dev eth0 parent 4e51:10 handle 5010: bfifo limit 4542\n' +
        'class replace dev eth0 parent 4e51:1 classid 4e51:3 htb rate 500000bit ceil 10000000bit burst 3028b cburst 12500b prio 0 quantum 1514\n' +
        'qdisc replace dev eth0 parent 4e51:3 handle 5003: bfifo limit 3028\n' +
        'class replace dev nqi2 parent 4e51: classid 4e51:1 htb rate 200000000bit ceil 200000000bit burst 250000b cburst 250000b quantum 25000\n' +
        'class replace dev nqi2 parent 4e51:1 classid 4e51:10 htb rate 190000000bit ceil 200000000bit burst 237500b cburst 250000b prio 1 quantum 23750\n' +
        'qdisc replace dev nqi2 parent 4e51:10 handle 7010: tbf rate 2000000000bit burst 253028b peakrate 100000000000bit mtu 3028 limit 50000\n' +
        'class replace dev nqi2 parent 4e51:1 classid 4e51:3 htb rate 10000000bit ceil 200000000bit burst 12500b cburst 250000b prio 0 quantum 1514\n' +
        'qdisc replace dev nqi2 parent 4e51:3 handle 5003: bfifo limit 50000\n',
    );
    expect(tc).not.toMatch(/del|root|ingress|filter/);
  });

  it('refuses a namespace netqos does not shape, and shaping that needs a repair', () => {
    const bare = { ...base, observed: { links: LINKS.slice(0, 2), qdiscs: [] }, classes: new Map(), qdiscs: new Map() };
    expect(rejection(() => planUpdate({ ...bare, update: { egress: { rateBps: 1e7 } } })).message).toBe(
      "netns /run/netns/c: netqos does not shape it (no HTB tree of netqos's in its namespace); shape it with netqos apply first",
    );
    const noRedirect = { ...base, observed: { ...SHAPED, filters: SHAPED.filters?.filter((f) => f !== REDIRECT) } };
    const e = rejection(() => planUpdate({ ...noRedirect, update: { egress: { rateBps: 2e7 } } }));
    expect(e.message).toBe('netns /run/netns/c: its shaping is incomplete (an update would have to run "filter add dev eth0 parent ffff: protocol all prio 49 u32 match u32 0 0 action mirred egress redirect dev nqi2"); repair it with netqos apply');
    // the small-packet filters are part of the tree: a tree without them needs a repair too
    const noSmall = { ...base, observed: { ...SHAPED, filters: [REDIRECT, ...smallFilters('eth0')] } };
    expect(rejection(() => planUpdate({ ...noSmall, update: { egress: { rateBps: 2e7 } } })).message).toBe(
      'netns /run/netns/c: its shaping is incomplete (an update would have to run "filter add dev nqi2 parent 4e51: protocol ip prio 3 u32 match u16 0 0xff00 at 2 flowid 4e51:3" and 1 more); repair it with netqos apply',
    );
  });

  it('refuses a tree with classes or unshaped subnets (their matches live in the annotations, not the kernel)', () => {
    const withChild = classes(
      'class htb 4e51:1 root rate 50Mbit ceil 50Mbit burst 62500b cburst 62500b \n' +
        'class htb 4e51:11 parent 4e51:1 leaf 4e5b: prio 0 rate 40Mbit ceil 50Mbit burst 50000b cburst 50000b \n',
      INGRESS_CLASSES,
    );
    const msg = (o: object) => rejection(() => planUpdate({ ...base, ...o, update: { egress: { rateBps: 2e7 } } })).message;
    expect(msg({ classes: withChild })).toBe(
      'netns /run/netns/c: eth0 has per-destination classes or unshaped subnets, which netqos update does not change; apply the new limits with netqos apply or the annotations',
    );
    const bypass = { dev: 'eth0', parent: 'ffff:', prio: 47, handle: '800::800', kind: 'u32', flowid: 'ffff:4e51' };
    expect(msg({ observed: { ...SHAPED, filters: [...(SHAPED.filters ?? []), bypass] } })).toMatch(/^netns \/run\/netns\/c: eth0 has per-destination classes or unshaped subnets/);
  });
});
