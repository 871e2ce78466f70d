/**
 * ipvlan, planned from `ip -json -details link show` of real ipvlan devices (this kernel has
 * none): test/fixtures/kernel/ip-link-ipvlan-l2.recorded-upstream.json is the output recorded
 * in aristanetworks/bst's tests (README.txt there). No public JSON recording of an L3/L3s
 * ipvlan was found: ip-link-ipvlan.handmade.json (L3, NOARP) stays hand-written and says so.
 *
 * What matters for shaping: an ipvlan is shaped like a macvlan, egress HTB on the device in the
 * container, ingress redirected by a u32 match-all filter (it matches every packet whatever
 * its link layer, so L3 mode's missing ARP and shared MAC change nothing) to the ifb.
 */
import { describe, expect, it } from 'vitest';
import { MINIMAL_CAPS } from '../../src/domain/link.js';
import { planApply } from '../../src/plan/apply-plan.js';
import { parseIpLinks } from '../../src/plan/parse-ip.js';
import { planRemove } from '../../src/plan/remove-plan.js';
import { renderIp, renderTc } from '../../src/plan/render.js';
import { fixture, handmade } from '../support/kernel-fixtures.js';

const BOTH = { egress: { rateBps: 10e6 }, ingress: { rateBps: 20e6 } };

describe('ipvlan L2 (recorded upstream, iproute2 without tso_max_size)', () => {
  const links = parseIpLinks(fixture('ip-link-ipvlan-l2.recorded-upstream.json'));

  it('is classified ipvlan; missing tso/gso sizes fall back to 64 KiB', () => {
    expect(links).toEqual([{ name: 'ipvlan', index: 2, kind: 'ipvlan', mtu: 1500, up: true, gsoMaxSize: 65536, tsoMaxSize: 65536, rootQdisc: 'noqueue' }]);
  });

  it('golden plan: egress HTB on the ipvlan, ingress u32 match-all redirect to nqi2', () => {
    const p = planApply({ spec: BOTH, observed: { links, qdiscs: [] }, caps: MINIMAL_CAPS });
    expect(renderIp(p.ip)).toBe('link set dev ipvlan gso_max_size 3028\nlink add nqi2 mtu 1500 up type ifb\n');
    expect(renderTc(p.tc)).toBe(`qdisc replace dev ipvlan root handle 4e51: htb default 10
class replace dev ipvlan parent 4e51: classid 4e51:1 htb rate 10000000bit ceil 10000000bit burst 12500b cburst 12500b quantum 1514
class replace dev ipvlan parent 4e51:1 classid 4e51:10 htb rate 9500000bit ceil 10000000bit burst 11875b cburst 12500b prio 1 quantum 1514
qdisc replace dev ipvlan parent 4e51:10 handle 5010: bfifo limit 6250
class replace dev ipvlan parent 4e51:1 classid 4e51:3 htb rate 500000bit ceil 10000000bit burst 3028b cburst 12500b prio 0 quantum 1514
qdisc replace dev ipvlan parent 4e51:3 handle 5003: bfifo limit 6250
filter add dev ipvlan parent 4e51: protocol ip prio 3 u32 match u16 0 0xff00 at 2 flowid 4e51:3
filter add dev ipvlan parent 4e51: protocol ipv6 prio 4 u32 match u16 0 0xff00 at 4 flowid 4e51:3
qdisc replace dev nqi2 root handle 4e51: htb default 10
class replace dev nqi2 parent 4e51: classid 4e51:1 htb rate 20000000bit ceil 20000000bit burst 25000b cburst 25000b quantum 2500
class replace dev nqi2 parent 4e51:1 classid 4e51:10 htb rate 19000000bit ceil 20000000bit burst 23750b cburst 25000b prio 1 quantum 2375
qdisc replace dev nqi2 parent 4e51:10 handle 7010: tbf rate 200000000bit burst 28028b peakrate 100000000000bit mtu 3028 limit 18168
class replace dev nqi2 parent 4e51:1 classid 4e51:3 htb rate 1000000bit ceil 20000000bit burst 3028b cburst 25000b prio 0 quantum 1514
qdisc replace dev nqi2 parent 4e51:3 handle 5003: bfifo limit 12500
filter add dev nqi2 parent 4e51: protocol ip prio 3 u32 match u16 0 0xff00 at 2 flowid 4e51:3
filter add dev nqi2 parent 4e51: protocol ipv6 prio 4 u32 match u16 0 0xff00 at 4 flowid 4e51:3
qdisc add dev ipvlan handle ffff: ingress
filter add dev ipvlan parent ffff: protocol all prio 49 u32 match u32 0 0 action mirred egress redirect dev nqi2
`);
    expect(p.shaped.map((s) => [s.dev, s.direction, s.shapedOn])).toEqual([
      ['ipvlan', 'egress', 'ipvlan'],
      ['ipvlan', 'ingress', 'nqi2'],
    ]);
  });
});

describe('ipvlan L3 (hand-written: NOARP, parent in the host namespace)', () => {
  const links = parseIpLinks(handmade('ip-link-ipvlan.handmade.json'));

  it('NOARP does not change the plan: same shape as L2, ifb from its ifindex', () => {
    const p = planApply({ spec: BOTH, observed: { links, qdiscs: [] }, caps: MINIMAL_CAPS });
    expect(renderIp(p.ip)).toBe('link set dev eth0 gso_max_size 3028\nlink add nqi5 mtu 1500 up type ifb\n');
    expect(renderTc(p.tc).split('\n').filter((l) => l.includes('dev eth0'))).toEqual([
      'qdisc replace dev eth0 root handle 4e51: htb default 10',
      'class replace dev eth0 parent 4e51: classid 4e51:1 htb rate 10000000bit ceil 10000000bit burst 12500b cburst 12500b quantum 1514',
      'class replace dev eth0 parent 4e51:1 classid 4e51:10 htb rate 9500000bit ceil 10000000bit burst 11875b cburst 12500b prio 1 quantum 1514',
      'qdisc replace dev eth0 parent 4e51:10 handle 5010: bfifo limit 6250',
      'class replace dev eth0 parent 4e51:1 classid 4e51:3 htb rate 500000bit ceil 10000000bit burst 3028b cburst 12500b prio 0 quantum 1514',
      'qdisc replace dev eth0 parent 4e51:3 handle 5003: bfifo limit 6250',
      'filter add dev eth0 parent 4e51: protocol ip prio 3 u32 match u16 0 0xff00 at 2 flowid 4e51:3',
      'filter add dev eth0 parent 4e51: protocol ipv6 prio 4 u32 match u16 0 0xff00 at 4 flowid 4e51:3',
      'qdisc add dev eth0 handle ffff: ingress',
      'filter add dev eth0 parent ffff: protocol all prio 49 u32 match u32 0 0 action mirred egress redirect dev nqi5',
    ]);
  });

  it('nothing of ours: the removal plan is empty', () => {
    expect(planRemove({ links, qdiscs: [] })).toEqual({ ip: [], tc: [], ipAfter: [], shaped: [] });
  });
});
