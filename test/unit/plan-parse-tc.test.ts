/**
 * parseQdiscs / parseFilters / splitBatchJson against `tc -json` output recorded on this kernel
 * (test/fixtures/kernel/README.txt says how each file was made).
 */
import { describe, expect, it } from 'vitest';
import { NetqosError } from '../../src/domain/errors.js';
import { isOurFilter } from '../../src/plan/ingress-hook.js';
import { parseFilters, parseQdiscs, splitBatchJson } from '../../src/plan/parse-tc.js';
import { fixture } from '../support/kernel-fixtures.js';

const brief = (qs: ReturnType<typeof parseQdiscs>): string[][] => qs.map((q) => [q.dev, q.kind, q.handle, q.parent]);

/**
 * our redirect as the kernel lists it on an ingress qdisc (recorded). We add it without a handle:
 * node 800::800 is the kernel's choice for the first u32 on an empty hook, not ours.
 */
const OUR_FILTER_NQTC0 = { dev: 'nqtc0', parent: 'ffff:', prio: 49, handle: '800::800', kind: 'u32', redirectTo: 'nqi2' };

describe('parseQdiscs', () => {
  it('fresh veth namespace: noqueue roots, dev from the output', () => {
    expect(brief(parseQdiscs(fixture('tc-qdisc-veth.json')))).toEqual([
      ['lo', 'noqueue', '0:', 'root'],
      ['nqtc0', 'noqueue', '0:', 'root'],
    ]);
  });

  it('shaped veth namespace: HTB roots, bfifo leaves of the bulk and small-packet classes (the ifb\'s bulk leaf a segmenting tbf), the ingress qdisc (parent ffff:fff1)', () => {
    const qs = parseQdiscs(fixture('tc-qdisc-veth-shaped.json'));
    expect(brief(qs)).toEqual([
      ['lo', 'noqueue', '0:', 'root'],
      ['nqtc0', 'htb', '4e51:', 'root'],
      ['nqtc0', 'bfifo', '5010:', '4e51:10'],
      ['nqtc0', 'bfifo', '5003:', '4e51:3'],
      ['nqtc0', 'ingress', 'ffff:', 'ffff:fff1'],
      ['nqi2', 'htb', '4e51:', 'root'],
      ['nqi2', 'tbf', '7010:', '4e51:10'],
      ['nqi2', 'bfifo', '5003:', '4e51:3'],
    ]);
    expect(qs[2]?.options).toEqual({ limit: 6250 });
    expect(qs[3]?.options).toEqual({ limit: 6250 });
    // tc -json prints no limit for a tbf (nor its peak rate): rate in bytes/s, burst, latency
    expect(qs[6]?.options).toEqual({ rate: 25_000_000, burst: 28025, minburst: 0, lat: 1 });
    expect(qs[7]?.options).toEqual({ limit: 12500 });
    // HTB prints its default class in hex
    expect(qs[1]?.options).toMatchObject({ default: '0x10', r2q: 10 });
  });

  it('without -s there are no counters', () => {
    for (const q of parseQdiscs(fixture('tc-qdisc-veth-shaped.json'))) {
      expect(q.bytes).toBeUndefined();
      expect(q.packets).toBeUndefined();
    }
  });

  it('with -s: counters per qdisc', () => {
    const qs = parseQdiscs(fixture('tc-qdisc-veth-shaped-stats.json'));
    const get = (dev: string, kind: string, handle?: string) => qs.find((q) => q.dev === dev && q.kind === kind && (!handle || q.handle === handle));
    expect(get('nqtc0', 'htb')).toMatchObject({ bytes: 5556, packets: 14, drops: 0, overlimits: 0, backlog: 0, qlen: 0 });
    // the root counts what its leaves passed on: bulk (three 1000-byte datagrams and more) + small packets
    expect(get('nqtc0', 'bfifo', '5010:')).toMatchObject({ bytes: 4938, packets: 7 });
    expect(get('nqtc0', 'bfifo', '5003:')).toMatchObject({ bytes: 618, packets: 7 });
    expect(4938 + 618).toBe(5556);
    expect(get('nqi2', 'htb')).toMatchObject({ bytes: 5630, packets: 15 });
    expect(get('nqi2', 'tbf', '7010:')).toMatchObject({ bytes: 4938, packets: 7 });
    // The kernel counts the same 15 packets 14 bytes shorter on the ingress qdisc (the Ethernet
    // header is already pulled there) than on the ifb (where mirred pushed it back): ingress rates
    // must be read from the ifb, not from the ingress qdisc.
    expect(get('nqtc0', 'ingress')).toMatchObject({ bytes: 5420, packets: 15 });
    expect(5630 - 5420).toBe(15 * 14);
  });

  it('single-device output has no dev field: the caller names the device', () => {
    const text = fixture('tc-qdisc-veth-shaped-dev-nqtc0.json');
    expect(text).not.toContain('"dev"');
    expect(brief(parseQdiscs(text, 'nqtc0'))).toEqual([
      ['nqtc0', 'htb', '4e51:', 'root'],
      ['nqtc0', 'bfifo', '5010:', '4e51:10'],
      ['nqtc0', 'bfifo', '5003:', '4e51:3'],
      ['nqtc0', 'ingress', 'ffff:', 'ffff:fff1'],
    ]);
    const stats = parseQdiscs(fixture('tc-qdisc-veth-shaped-stats-dev-nqi2.json'), 'nqi2');
    expect(stats.map((q) => [q.dev, q.kind, q.handle, q.bytes])).toEqual([
      ['nqi2', 'htb', '4e51:', 5630],
      ['nqi2', 'tbf', '7010:', 4938],
      ['nqi2', 'bfifo', '5003:', 692],
    ]);
  });

  it('a dev field in the output wins over the device the caller passed', () => {
    const qs = parseQdiscs(fixture('tc-qdisc-veth-shaped.json'), 'somethingelse');
    expect(new Set(qs.map((q) => q.dev))).toEqual(new Set(['lo', 'nqtc0', 'nqi2']));
  });

  it('batch output: one array per command, each parsed for its own device', () => {
    const arrays = splitBatchJson(fixture('tc-qdisc-veth-shaped-batch.txt'));
    expect(arrays).toHaveLength(2);
    const [a, b] = arrays as [string, string];
    expect(brief(parseQdiscs(a, 'nqtc0')).map((r) => r.slice(0, 2))).toEqual([
      ['nqtc0', 'htb'],
      ['nqtc0', 'bfifo'],
      ['nqtc0', 'bfifo'],
      ['nqtc0', 'ingress'],
    ]);
    const ifb = parseQdiscs(b, 'nqi2');
    expect(brief(ifb).map((r) => r.slice(0, 2))).toEqual([
      ['nqi2', 'htb'],
      ['nqi2', 'tbf'],
      ['nqi2', 'bfifo'],
    ]);
    expect(ifb[0]?.options).toMatchObject({ direct_qlen: 32 }); // an ifb's txqueuelen
  });

  it('batch output with -s keeps the counters', () => {
    const [a, b] = splitBatchJson(fixture('tc-qdisc-veth-shaped-stats-batch.txt')) as [string, string];
    expect(parseQdiscs(a, 'nqtc0')[0]).toMatchObject({ dev: 'nqtc0', kind: 'htb', bytes: 5556, packets: 14 });
    expect(parseQdiscs(b, 'nqi2')[1]).toMatchObject({ dev: 'nqi2', kind: 'tbf', handle: '7010:', bytes: 4938, packets: 7 });
  });

  it('clsact is listed like ingress (handle ffff:, parent ffff:fff1): only kind tells them apart', () => {
    const qs = parseQdiscs(fixture('tc-qdisc-macvlan-shaped-clsact.json'));
    expect(brief(qs).filter((q) => q[0] === 'nqtm0' && q[2] === 'ffff:')).toEqual([['nqtm0', 'clsact', 'ffff:', 'ffff:fff1']]);
  });

  it('empty output is no qdiscs', () => {
    expect(parseQdiscs('')).toEqual([]);
    expect(parseQdiscs('  \n')).toEqual([]);
  });

  it('malformed output -> KERNEL naming the command', () => {
    expect(() => parseQdiscs('Error: Cannot find device "nqtgone".')).toThrow(NetqosError);
    expect(() => parseQdiscs('Error: Cannot find device "nqtgone".')).toThrow(/tc -json qdisc show printed something that is not JSON/);
    expect(() => parseQdiscs('{"kind":"htb"}')).toThrow(expect.objectContaining({ code: 'KERNEL' }));
  });

  it('malformed output over several lines -> a one-line message quoting it as a JSON string', () => {
    // what tc prints when the kernel refuses (two lines), and a truncated `tc -json -pretty`
    const cases: Array<[(t: string) => unknown, string, string]> = [
      [(t) => parseQdiscs(t), 'tc -json qdisc show', 'Error: Cannot find device "nqtgone".\nWe have an error talking to the kernel\n'],
      [(t) => parseFilters(t, 'nqtc0'), 'tc -json filter show', '[ {\n        "parent": "ffff:",\n        "protocol": "all",\n        "pref": 49,'],
    ];
    for (const [parse, what, bad] of cases) {
      let err: unknown;
      try {
        parse(bad);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(NetqosError);
      const message = (err as NetqosError).message;
      expect(message).not.toContain('\n');
      expect(message).toBe(`${what} printed something that is not JSON: ${JSON.stringify(bad.trim().slice(0, 80))}`);
    }
  });
});

describe('splitBatchJson', () => {
  it('splits on newlines and drops blank lines', () => {
    expect(splitBatchJson('[1]\n\n[]\n[{"a":1}]\n')).toEqual(['[1]', '[]', '[{"a":1}]']);
  });
  it('nothing printed -> no arrays', () => {
    expect(splitBatchJson('')).toEqual([]);
    expect(splitBatchJson('\n\n')).toEqual([]);
  });
  it('recorded filter batch: three commands, the middle one (no ingress hook) printed []', () => {
    const arrays = splitBatchJson(fixture('tc-filter-veth-batch.txt'));
    expect(arrays).toHaveLength(3);
    expect(arrays[1]).toBe('[]');
    expect(parseFilters(arrays[0] ?? '', 'nqtc0')).toMatchObject([OUR_FILTER_NQTC0]);
    expect(parseFilters(arrays[1] ?? '', 'nqi2')).toEqual([]);
    expect(parseFilters(arrays[2] ?? '', 'nqtc0')).toMatchObject([OUR_FILTER_NQTC0]);
  });
});

describe('parseFilters', () => {
  it('our filter on an ingress qdisc: the u32 header rows (prio and hash table 800:) are skipped', () => {
    const text = fixture('tc-filter-veth-ingress-ours.json');
    expect((JSON.parse(text) as unknown[]).length).toBe(3);
    const fs = parseFilters(text, 'nqtc0');
    expect(fs).toMatchObject([OUR_FILTER_NQTC0]);
    expect(isOurFilter(fs[0]!)).toBe(true);
  });

  it('our filter on a clsact: found by prio and mirred target (tc prints no parent there)', () => {
    const text = fixture('tc-filter-macvlan-clsact-ours.json');
    expect(text).not.toContain('"parent"');
    const fs = parseFilters(text, 'nqtm0');
    expect(fs).toHaveLength(1);
    expect(fs[0]).toMatchObject({ dev: 'nqtm0', prio: 49, handle: '800::800', kind: 'u32', redirectTo: 'nqi6' });
    expect(isOurFilter(fs[0]!)).toBe(true);
  });

  it("someone else's redirect (prio 10 to nqtx0) is parsed and is not ours", () => {
    for (const [file, dev] of [
      ['tc-filter-ingress-foreign.json', 'nqtd0'],
      ['tc-filter-clsact-foreign.json', 'nqtd1'],
    ] as const) {
      const fs = parseFilters(fixture(file), dev);
      expect(fs).toHaveLength(1);
      expect(fs[0]).toMatchObject({ dev, prio: 10, handle: '800::800', redirectTo: 'nqtx0' });
      expect(isOurFilter(fs[0]!)).toBe(false);
    }
  });

  it('ours beside someone else\'s: the kernel gave ours hash table 801:', () => {
    const fs = parseFilters(fixture('tc-filter-ingress-foreign-and-ours.json'), 'nqtd0');
    expect(fs.map((f) => [f.prio, f.handle, f.redirectTo, isOurFilter(f)])).toEqual([
      [10, '800::800', 'nqtx0', false],
      [49, '801::800', 'nqi2', true],
    ]);
    const cls = parseFilters(fixture('tc-filter-clsact-foreign-and-ours.json'), 'nqtd1');
    expect(cls.map((f) => [f.prio, f.handle, f.redirectTo, isOurFilter(f)])).toEqual([
      [10, '800::800', 'nqtx0', false],
      [49, '801::800', 'nqi3', true],
    ]);
  });

  // Why our filter has no handle: this is what the planner's OLD line `filter replace ... prio 49
  // handle 800::800` did to a hook that already had someone's u32 (recorded, and reproduced again
  // with that line on 2026-11-21). The current line leaves tc-filter-*-foreign-and-ours.json instead.
  it('recorded evidence of `filter replace ... handle 800::800` on a hook that already had a u32: ' +
    "someone else's prio-10 rule now redirects to our ifb, and prio 49 holds no rule", () => {
    const fs = parseFilters(fixture('tc-filter-ingress-hijacked.json'), 'nqtd0');
    expect(fs).toMatchObject([{ dev: 'nqtd0', parent: 'ffff:', prio: 10, handle: '800::800', kind: 'u32', redirectTo: 'nqi2' }]);
    const raw = JSON.parse(fixture('tc-filter-ingress-hijacked.json')) as Array<{ pref: number; options?: { fh?: string } }>;
    expect(raw.filter((r) => r.pref === 49).map((r) => r.options?.fh)).toEqual([undefined, '801:']);
    expect(parseFilters(fixture('tc-filter-clsact-hijacked.json'), 'nqtd1').map((f) => [f.prio, f.redirectTo])).toEqual([[10, 'nqi3']]);
    // no rule of ours is found on a hijacked hook: the hijack is not mistaken for our redirect
    expect(fs.filter(isOurFilter)).toEqual([]);
  });

  it('a redirect whose device vanished prints to_dev "*": ours at prio 49, not at any other prio', () => {
    const fs = parseFilters(fixture('tc-filter-veth-ingress-orphaned.json'), 'nqtc0');
    expect(fs).toMatchObject([{ ...OUR_FILTER_NQTC0, redirectTo: '*' }]);
    expect(isOurFilter(fs[0]!)).toBe(true);
    expect(isOurFilter({ ...fs[0]!, prio: 10 })).toBe(false);
  });

  it('a u32 rule without a redirect (classid only, or mirred mirror) has no redirectTo', () => {
    const rule = (actions?: unknown[]) =>
      JSON.stringify([
        { parent: 'ffff:', protocol: 'all', pref: 49, kind: 'u32', chain: 0 },
        { parent: 'ffff:', protocol: 'all', pref: 49, kind: 'u32', chain: 0, options: { fh: '800:', ht_divisor: 1 } },
        { parent: 'ffff:', protocol: 'all', pref: 49, kind: 'u32', chain: 0, options: { fh: '800::800', order: 2048, key_ht: '800', bkt: '0', ...(actions ? { actions } : { flowid: ':1' }) } },
      ]);
    const plain = parseFilters(rule(), 'nqtc0');
    expect(plain).toMatchObject([{ dev: 'nqtc0', parent: 'ffff:', prio: 49, handle: '800::800', kind: 'u32' }]);
    expect(isOurFilter(plain[0]!)).toBe(false);
    const mirror = parseFilters(rule([{ order: 1, kind: 'mirred', mirred_action: 'mirror', direction: 'egress', to_dev: 'nqi2' }]), 'nqtc0');
    expect(mirror[0]?.redirectTo).toBeUndefined();
    expect(isOurFilter(mirror[0]!)).toBe(false);
  });

  it('no filters and malformed output', () => {
    expect(parseFilters('[]', 'nqtc0')).toEqual([]);
    expect(parseFilters('', 'nqtc0')).toEqual([]);
    expect(() => parseFilters('[{"pref":', 'nqtc0')).toThrow(expect.objectContaining({ code: 'KERNEL' }));
  });
});

