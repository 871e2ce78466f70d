/**
 * planRemove: everything of ours out of a namespace, recognised by handle 4e51:, ifb names
 * nqi<ifindex> and filter prio 49 redirecting to nqi* (or to "*", an ifb that vanished); nothing
 * else is touched. Observed states are recorded kernel output (test/fixtures/kernel/README.txt).
 * Texts marked "verified" were run with `ip netns exec nqt-gd-... tc -batch -` / `ip -batch -` in
 * namespaces rebuilt like the fixture ones (kernel 6.18, iproute2 6.1; last on 2026-11-21) and left
 * exactly the unshaped state behind (tc -json qdisc / filter show byte-identical to the recording).
 */
import { describe, expect, it } from 'vitest';
import type { Link, Observed } from '../../src/domain/link.js';
import type { Plan } from '../../src/plan/ops.js';
import { parseFilters } from '../../src/plan/parse-tc.js';
import { isEmptyPlan, planRemove } from '../../src/plan/remove-plan.js';
import { renderIp, renderTc } from '../../src/plan/render.js';
import { fixture, linksOf, observe } from '../support/kernel-fixtures.js';

const text = (p: Plan) => ({ ip: renderIp(p.ip), tc: renderTc(p.tc), ipAfter: renderIp(p.ipAfter) });
const all = (p: Plan): string => Object.values(text(p)).join('');

describe('nothing of ours -> empty plan', () => {
  const cases: Array<[string, Observed]> = [
    ['fresh veth namespace', observe('ip-link-veth.json', 'tc-qdisc-veth.json')],
    ['fresh macvlan namespace', observe('ip-link-macvlan.json', 'tc-qdisc-macvlan.json')],
    ["macvlan with someone else's clsact", observe('ip-link-macvlan.json', 'tc-qdisc-macvlan-clsact.json')],
    ['only lo', observe('ip-link-lo-only.json')],
    ['two fresh veths', observe('ip-link-two-veth-fresh.json', 'tc-qdisc-two-veth-fresh.json')],
    [
      "someone else's ifb with an HTB root 1:, ingress qdisc and clsact with their redirects",
      observe('ip-link-two-veth-foreign.json', 'tc-qdisc-two-veth-foreign.json', {
        nqtd0: 'tc-filter-ingress-foreign.json',
        nqtd1: 'tc-filter-clsact-foreign.json',
      }),
    ],
    ['host side: bridge, bridge port, veth pair', observe('ip-link-host-bridge.json')],
    ['SR-IOV pod', observe('ip-link-sriov-vf.handmade.json')],
  ];
  it.each(cases)('%s', (_what, o) => {
    const p = planRemove(o);
    expect(p).toEqual({ ip: [], tc: [], ipAfter: [], shaped: [] });
    expect(isEmptyPlan(p)).toBe(true);
  });
});

describe('everything of ours -> exact removal text, tc first, then ip', () => {
  it('shaped veth (verified)', () => {
    const p = planRemove(observe('ip-link-veth-shaped.json', 'tc-qdisc-veth-shaped.json', { nqtc0: 'tc-filter-veth-ingress-ours.json' }));
    expect(text(p)).toEqual({
      ip: '',
      tc: 'qdisc del dev nqtc0 ingress\nqdisc del dev nqtc0 root\n',
      ipAfter: 'link set dev nqtc0 gso_max_size 65536\nlink del dev nqi2\n',
    });
    expect(isEmptyPlan(p)).toBe(false);
  });

  it('egress-only state: the root goes and the gso cap is restored (verified)', () => {
    expect(text(planRemove(observe('ip-link-veth-egress-only.json', 'tc-qdisc-veth-egress-only.json')))).toEqual({
      ip: '',
      tc: 'qdisc del dev nqtc0 root\n',
      ipAfter: 'link set dev nqtc0 gso_max_size 65536\n',
    });
  });

  it('shaped macvlan: its ifb (nqi6, listed first by the kernel) goes too (verified)', () => {
    expect(
      text(planRemove(observe('ip-link-macvlan-shaped.json', 'tc-qdisc-macvlan-shaped.json', { nqtm0: 'tc-filter-macvlan-ingress-ours.json' }))),
    ).toEqual({
      ip: '',
      tc: 'qdisc del dev nqtm0 ingress\nqdisc del dev nqtm0 root\n',
      ipAfter: 'link del dev nqi6\nlink set dev nqtm0 gso_max_size 65536\n',
    });
  });

  it('shaped macvlan behind a clsact: our filter on ffff:fff2 goes, the clsact stays (verified)', () => {
    const t = text(
      planRemove(observe('ip-link-macvlan-shaped.json', 'tc-qdisc-macvlan-shaped-clsact.json', { nqtm0: 'tc-filter-macvlan-clsact-ours.json' })),
    );
    expect(t).toEqual({
      ip: '',
      tc: 'filter del dev nqtm0 parent ffff:fff2 protocol all prio 49\nqdisc del dev nqtm0 root\n',
      ipAfter: 'link del dev nqi6\nlink set dev nqtm0 gso_max_size 65536\n',
    });
    expect(t.tc).not.toMatch(/clsact|ingress/);
  });

  it("two veths whose hooks also hold someone else's filters: only our prio 49 goes (verified)", () => {
    const p = planRemove(
      observe('ip-link-two-veth-shaped.json', 'tc-qdisc-two-veth-shaped.json', {
        nqtd0: 'tc-filter-ingress-foreign-and-ours.json',
        nqtd1: 'tc-filter-clsact-foreign-and-ours.json',
      }),
    );
    expect(text(p)).toEqual({
      ip: '',
      tc: `filter del dev nqtd0 parent ffff: protocol all prio 49
qdisc del dev nqtd0 root
filter del dev nqtd1 parent ffff:fff2 protocol all prio 49
qdisc del dev nqtd1 root
`,
      ipAfter: `link set dev nqtd0 gso_max_size 65536
link set dev nqtd1 gso_max_size 65536
link del dev nqi2
link del dev nqi3
`,
    });
    // their ifb nqtx0 and its HTB root 1: are not touched
    expect(all(p)).not.toContain('nqtx0');
  });

  it('ordering: no ip operation before tc; every ifb deletion comes after tc; tc only deletes', () => {
    const p = planRemove(observe('ip-link-veth-shaped.json', 'tc-qdisc-veth-shaped.json', { nqtc0: 'tc-filter-veth-ingress-ours.json' }));
    expect(p.ip).toEqual([]);
    expect(p.tc.every((op) => op.verb === 'delete')).toBe(true);
    expect(p.ipAfter.filter((op) => op.verb === 'delete').map((op) => op.name)).toEqual(['nqi2']);
  });

  it('deleting the ifb is enough for its own qdiscs: no tc op names an ifb', () => {
    const p = planRemove(observe('ip-link-two-veth-shaped.json', 'tc-qdisc-two-veth-shaped.json'));
    expect(text(p).tc).not.toMatch(/dev nqi\d/);
  });

  it('the plan for the state it leaves behind is empty (recorded before/after)', () => {
    // the verified removal of the shaped veth left tc-qdisc-veth.json / ip-link-veth.json
    expect(isEmptyPlan(planRemove(observe('ip-link-veth.json', 'tc-qdisc-veth.json')))).toBe(true);
  });
});

describe('never touches what is not ours', () => {
  it("someone else's HTB root with a different handle is never deleted", () => {
    const o = observe('ip-link-veth.json');
    o.qdiscs = [
      { dev: 'nqtc0', kind: 'htb', handle: '1:', parent: 'root' },
      { dev: 'nqtc0', kind: 'bfifo', handle: '4e52:', parent: '1:1' }, // even with our leaf handle under it
    ];
    expect(isEmptyPlan(planRemove(o))).toBe(true);
  });

  it('a 4e51: qdisc that is not an HTB root is not ours', () => {
    const o = observe('ip-link-veth.json');
    o.qdiscs = [
      { dev: 'nqtc0', kind: 'tbf', handle: '4e51:', parent: 'root' },
      { dev: 'nqtc0', kind: 'htb', handle: '4e51:', parent: '1:1' },
    ];
    expect(isEmptyPlan(planRemove(o))).toBe(true);
  });

  it("someone else's ifb (ifb0, ifb1, nqtx0) is never deleted, even with our HTB handle on it", () => {
    const foreign = observe('ip-link-two-veth-foreign.json');
    const ifb = foreign.links.find((l) => l.name === 'nqtx0') as Link;
    const o: Observed = {
      links: [...foreign.links, { ...ifb, name: 'ifb0', index: 10 }, { ...ifb, name: 'ifb1', index: 11 }, { ...ifb, name: 'nqi', index: 12 }, { ...ifb, name: 'nqi2x', index: 13 }],
      qdiscs: [
        { dev: 'ifb0', kind: 'htb', handle: '4e51:', parent: 'root' },
        { dev: 'nqtx0', kind: 'htb', handle: '1:', parent: 'root' },
      ],
      filters: [],
    };
    const p = planRemove(o);
    expect(p.ipAfter.filter((op) => op.verb === 'delete')).toEqual([]);
    expect(all(p)).not.toMatch(/link del/);
    expect(all(p)).not.toMatch(/nqtx0|ifb1|nqi2x|dev nqi\b/);
  });

  it('a device named like our ifb that is not an ifb is not deleted', () => {
    const o = observe('ip-link-veth.json');
    o.links = o.links.map((l) => (l.name === 'nqtc0' ? { ...l, name: 'nqi7' } : l));
    expect(all(planRemove(o))).not.toContain('link del');
  });

  it("a prio-49 filter redirecting somewhere else, or someone's filter redirecting to nqtx0, is not ours", () => {
    const o = observe('ip-link-two-veth-foreign.json', 'tc-qdisc-two-veth-foreign.json');
    o.filters = [
      { dev: 'nqtd0', parent: 'ffff:', prio: 49, handle: '800::800', kind: 'u32', redirectTo: 'nqtx0' },
      { dev: 'nqtd1', parent: '', prio: 10, handle: '800::800', kind: 'u32', redirectTo: 'nqi3' },
      { dev: 'nqtd1', parent: '', prio: 49, handle: '801::800', kind: 'u32' },
    ];
    expect(isEmptyPlan(planRemove(o))).toBe(true);
  });

  it('an ingress qdisc holding only our filter is deleted whole; with any other filter only our prio', () => {
    const o = observe('ip-link-veth-shaped.json', 'tc-qdisc-veth-shaped.json', { nqtc0: 'tc-filter-veth-ingress-ours.json' });
    expect(text(planRemove(o)).tc).toContain('qdisc del dev nqtc0 ingress\n');
    o.filters = [...(o.filters ?? []), { dev: 'nqtc0', parent: 'ffff:', prio: 10, handle: '801::800', kind: 'u32' }];
    const tc = text(planRemove(o)).tc;
    expect(tc).toContain('filter del dev nqtc0 parent ffff: protocol all prio 49\n');
    expect(tc).not.toContain('qdisc del dev nqtc0 ingress');
  });

  it("the gso_max_size is restored only where our root was (someone else's capped device is left alone)", () => {
    const o = observe('ip-link-two-veth-fresh.json');
    o.links = o.links.map((l) => (l.name.startsWith('nqtd') ? { ...l, gsoMaxSize: 3028 } : l));
    o.qdiscs = [{ dev: 'nqtd1', kind: 'htb', handle: '4e51:', parent: 'root' }];
    expect(text(planRemove(o))).toEqual({ ip: '', tc: 'qdisc del dev nqtd1 root\n', ipAfter: 'link set dev nqtd1 gso_max_size 65536\n' });
  });
});

/*
 * Our ifb vanished (deleted by hand, or by anyone): the kernel keeps our prio-49 redirect and tc
 * prints its target as "to_dev":"*" (recorded: tc-filter-veth-ingress-orphaned.json). Such a rule
 * steals every inbound packet (measured on the fixture namespace: 5 of 5 UDP packets counted as
 * overlimits, none delivered), so teardown, which works from identity alone, counts a prio-49 u32
 * whose redirect lost its device as ours.
 */
describe('our redirect whose ifb has vanished', () => {
  /** the recorded state: shaped, then `ip link del nqi2` (the qdisc list is the shaped one minus nqi2's) */
  const orphaned = (): Observed => {
    const o = observe('ip-link-veth-egress-only.json', 'tc-qdisc-veth-shaped.json', { nqtc0: 'tc-filter-veth-ingress-orphaned.json' });
    o.qdiscs = o.qdiscs.filter((q) => q.dev !== 'nqi2');
    return o;
  };

  it('the recorded filter: prio 49, node 800::800, redirect to "*"', () => {
    expect(parseFilters(fixture('tc-filter-veth-ingress-orphaned.json'), 'nqtc0')).toMatchObject([
      { dev: 'nqtc0', parent: 'ffff:', prio: 49, handle: '800::800', kind: 'u32', redirectTo: '*' },
    ]);
  });

  it('is removed with the ingress qdisc (all filters on it ours) (verified)', () => {
    const o = orphaned();
    expect(o.links.map((l) => l.name)).not.toContain('nqi2');
    expect(text(planRemove(o))).toEqual({
      ip: '',
      tc: 'qdisc del dev nqtc0 ingress\nqdisc del dev nqtc0 root\n',
      ipAfter: 'link set dev nqtc0 gso_max_size 65536\n',
    });
  });

  it('the orphan alone is still something to remove (not an empty plan)', () => {
    const o = orphaned();
    o.qdiscs = o.qdiscs.filter((q) => !(q.dev === 'nqtc0' && q.parent === 'root'));
    const p = planRemove(o);
    expect(isEmptyPlan(p)).toBe(false);
    expect(text(p).tc).toBe('qdisc del dev nqtc0 ingress\n');
  });

  it("beside someone else's filter, or on a clsact: only our prio 49 is deleted, the hook stays", () => {
    const o = observe('ip-link-two-veth-foreign.json', 'tc-qdisc-two-veth-foreign.json', {
      nqtd0: 'tc-filter-ingress-foreign-and-ours.json',
      nqtd1: 'tc-filter-clsact-foreign-and-ours.json',
    });
    o.filters = o.filters?.map((f) => (f.prio === 49 ? { ...f, redirectTo: '*' } : f));
    expect(text(planRemove(o))).toEqual({
      ip: '',
      tc: 'filter del dev nqtd0 parent ffff: protocol all prio 49\nfilter del dev nqtd1 parent ffff:fff2 protocol all prio 49\n',
      ipAfter: '',
    });
  });

  it('a "*" redirect at another priority is not ours', () => {
    const o = observe('ip-link-two-veth-foreign.json', 'tc-qdisc-two-veth-foreign.json', { nqtd0: 'tc-filter-ingress-foreign.json' });
    o.filters = o.filters?.map((f) => ({ ...f, redirectTo: '*' }));
    expect(o.filters).toHaveLength(1);
    expect(isEmptyPlan(planRemove(o))).toBe(true);
  });
});
