/**
 * `netqos status` of a namespace shaped with classes and unshaped subnets, from recorded kernel
 * output (test/fixtures/kernel/README.txt, "Classes and unshaped subnets"): one row per class
 * with its id, its place in the annotation, its match read back from the u32 filters, rate,
 * ceil, prio and its own counters, in the table and in --json.
 */
import { describe, expect, it } from 'vitest';
import { buildStatus, renderStatusJson, renderStatusTable, type StatusReport } from '../../src/cli/status-report.js';
import type { Observed } from '../../src/domain/link.js';
import { parseHtbClassText } from '../../src/plan/parse-class.js';
import { parseIpLinks } from '../../src/plan/parse-ip.js';
import { parseFilters, parseQdiscs, type QdiscStats } from '../../src/plan/parse-tc.js';
import { fixture } from '../support/kernel-fixtures.js';


function recorded(): { observed: Observed; stats: Map<string, QdiscStats[]>; classes: Map<string, ReturnType<typeof parseHtbClassText>> } {
  const links = parseIpLinks(fixture('ip-link-veth-classes.json'));
  const qdiscs = parseQdiscs(fixture('tc-qdisc-veth-classes-stats.json'));
  const filters = [
    ...parseFilters(fixture('tc-filter-veth-classes-ingress-nqtr0.json'), 'nqtr0'),
    ...parseFilters(fixture('tc-filter-veth-classes-root-nqtr0.json'), 'nqtr0', '4e51:'),
    ...parseFilters(fixture('tc-filter-veth-classes-root-nqi2.json'), 'nqi2', '4e51:'),
  ];
  const stats = new Map<string, QdiscStats[]>();
  for (const q of qdiscs) stats.set(q.dev, [...(stats.get(q.dev) ?? []), q]);
  const classes = new Map([
    ['nqtr0', parseHtbClassText(fixture('tc-class-veth-classes-nqtr0.txt'), 'nqtr0')],
    ['nqi2', parseHtbClassText(fixture('tc-class-veth-classes-nqi2.txt'), 'nqi2')],
  ]);
  return { observed: { links, qdiscs, filters }, stats, classes };
}

const zero = { drops: 0, overlimits: 0, backlog: 0 };

describe('status with classes (recorded)', () => {
  it('one entry per class: annotation order, then default, then unshaped; matches read back from the filters', () => {
    const r = buildStatus({ target: 'netns /run/netns/x', ...recorded() });
    const [iface] = r.interfaces;
    expect(iface?.egress.classes).toEqual([
      { classid: '4e51:11', name: '#1', position: 1, match: ['198.18.200.11/32'], rateBps: 8e6, ceilBps: 8e6, prio: 0, counters: { bytes: 602, packets: 7, ...zero } },
      {
        classid: '4e51:12', name: '#2', position: 2, match: ['198.18.200.12/32 tcp port 5201', 'fd00:6e71:c2::/64 tcp port 5201'],
        rateBps: 4e6, ceilBps: 10e6, prio: 3, counters: { bytes: 0, packets: 0, ...zero },
      },
      { classid: '4e51:10', name: 'default', match: [], rateBps: 8e6, ceilBps: 20e6, prio: 7, counters: { bytes: 2066, packets: 25, ...zero } },
      {
        classid: '4e51:2', name: 'unshaped', match: ['198.18.200.128/25', 'fd00:6e71:c2:80::/64'],
        rateBps: 100e9, ceilBps: 100e9, prio: 0, counters: { bytes: 294, packets: 3, ...zero },
      },
    ]);
    expect(iface?.egress.unshaped).toEqual(['198.18.200.128/25', 'fd00:6e71:c2:80::/64']);
    // ingress: matched on the source; the unshaped subnets live on the device's ingress hook
    expect(iface?.ingress.classes).toEqual([
      { classid: '4e51:11', name: '#1', position: 1, match: ['198.18.200.11/32 udp'], rateBps: 5e6, ceilBps: 5e6, prio: 7, counters: { bytes: 196, packets: 4, ...zero } },
      { classid: '4e51:10', name: 'default', match: [], rateBps: 15e6, ceilBps: 20e6, prio: 7, counters: { bytes: 2436, packets: 30, ...zero } },
    ]);
    expect(iface?.ingress.unshaped).toEqual(['198.18.200.128/25', 'fd00:6e71:c2:80::/64']);
    // the direction's own row is unchanged: the parent's rate, the root's counters
    expect(iface?.egress).toMatchObject({ rateBps: 20e6, ceilBps: 20e6, burstBytes: 25000, counters: { bytes: 2962, packets: 35 } });
    expect(iface?.egress.leaf).toBeUndefined();
  });

  it('the table: the direction rows, then a row per class', () => {
    const r = buildStatus({ target: 'netns /run/netns/x', ...recorded() });
    const cls = r.interfaces[0]!.egress.classes![1]!;
    cls.counters = { bytes: 91234, packets: 61, drops: 3, overlimits: 40, backlog: 4542 };
    expect(renderStatusTable(r)).toBe(
      [
        'netns /run/netns/x',
        'INTERFACE  DIRECTION  SHAPED ON  RATE   BURST  LEAF       BYTES  PACKETS  DROPS  OVERLIMITS  BACKLOG',
        'nqtr0      egress     nqtr0       20M  25000B  per class   2962       35      0           0       0B',
        'nqtr0      ingress    nqi2        20M  25000B  per class   2632       34      0           0       0B',
        '',
        'INTERFACE  DIRECTION  CLASS    NAME      MATCH                                                            RATE  CEIL  PRIO  BYTES  PACKETS  DROPS  OVERLIMITS  BACKLOG',
        'nqtr0      egress     4e51:11  #1        198.18.200.11/32                                                   8M    8M     0    602        7      0           0       0B',
        'nqtr0      egress     4e51:12  #2        198.18.200.12/32 tcp port 5201, fd00:6e71:c2::/64 tcp port 5201    4M   10M     3  91234       61      3          40    4542B',
        'nqtr0      egress     4e51:10  default   anything else                                                      8M   20M     7   2066       25      0           0       0B',
        'nqtr0      egress     4e51:2   unshaped  198.18.200.128/25, fd00:6e71:c2:80::/64                          100G  100G     0    294        3      0           0       0B',
        'nqtr0      ingress    4e51:11  #1        198.18.200.11/32 udp                                               5M    5M     7    196        4      0           0       0B',
        'nqtr0      ingress    4e51:10  default   anything else                                                     15M   20M     7   2436       30      0           0       0B',
        'nqtr0      ingress    -        unshaped  198.18.200.128/25, fd00:6e71:c2:80::/64                             -     -     -      -        -      -           -        -',
        '',
      ].join('\n'),
    );
  });

  it('--json carries the classes with their counters', () => {
    const r = buildStatus({ target: 'netns /run/netns/x', ...recorded() });
    const back = JSON.parse(renderStatusJson(r)) as StatusReport;
    expect(back).toEqual(r);
    expect(back.interfaces[0]?.egress.classes?.map((c) => [c.name, c.counters?.packets])).toEqual([['#1', 7], ['#2', 0], ['default', 25], ['unshaped', 3]]);
  });

  it('a filter netqos did not write shows as "?" rather than a guess', () => {
    const rec = recorded();
    const f = rec.observed.filters!.find((x) => x.dev === 'nqtr0' && x.flowid === '4e51:11')!;
    f.keys = ['00000045/000000ff@0'];
    const r = buildStatus({ target: 't', ...rec });
    expect(r.interfaces[0]?.egress.classes?.[0]?.match).toEqual(['?']);
  });

  it('without classes nothing changes: the bulk and small-packet children get no rows, no second table', () => {
    const rec = recorded();
    // the tree without classes as recorded (limit 4e51:1, bulk 4e51:10, small packets 4e51:3)
    rec.classes.set('nqtr0', parseHtbClassText(fixture('tc-class-veth-shaped-nqtc0.txt'), 'nqtr0'));
    rec.classes.set('nqi2', []);
    rec.observed.filters = [];
    const r = buildStatus({ target: 't', ...rec });
    expect(r.interfaces[0]?.egress.classes).toBeUndefined();
    expect(r.interfaces[0]?.egress.unshaped).toBeUndefined();
    expect(renderStatusTable(r)).not.toMatch(/CLASS/);
  });
});
