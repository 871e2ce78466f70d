/**
 * The text of `tc class show` (iproute2 6.1 prints HTB classes as text even with -json), as
 * netqos status reads it: rates 1000-based, sizes 1024-based.
 */
import { describe, expect, it } from 'vitest';
import { NetqosError } from '../../src/domain/errors.js';
import { parseHtbClassText, readTcRate, readTcSize } from '../../src/plan/parse-class.js';
import { fixture } from '../support/kernel-fixtures.js';


describe('readTcRate (bit/s)', () => {
  it.each([
    ['8bit', 8],
    ['999bit', 999],
    ['10Kbit', 10e3],
    ['1500Kbit', 1.5e6],
    ['10Mbit', 10e6],
    ['20Mbit', 20e6],
    ['1Gbit', 1e9],
    ['10Gbit', 10e9],
    ['2Tbit', 2e12],
    ['1Kibit', 1024],
    ['8Mibit', 8 * 2 ** 20],
  ])('%s -> %d', (text, bps) => {
    expect(readTcRate(text)).toBe(bps);
  });

  it.each(['10M', 'Mbit', '10mbit', '10 Mbit', '', '10Mbps'])('%j is not a tc rate', (text) => {
    expect(readTcRate(text)).toBeUndefined();
  });
});

describe('readTcSize (bytes)', () => {
  it.each([
    ['1514b', 1514],
    ['12500b', 12500],
    ['15Kb', 15 * 1024],
    ['64Kb', 65536],
    ['2Mb', 2 * 2 ** 20],
    ['1Gb', 2 ** 30],
  ])('%s -> %d', (text, bytes) => {
    expect(readTcSize(text)).toBe(bytes);
  });

  it.each(['12500', 'b', '15kb', '1.5 Kb'])('%j is not a tc size', (text) => {
    expect(readTcSize(text)).toBeUndefined();
  });
});

describe('parseHtbClassText', () => {
  it('recorded `tc -s class show` of our egress tree: prio and the counters of the statistics lines', () => {
    // without classes: the limit 4e51:1 (inner, no prio, no leaf), bulk 4e51:10 and small packets 4e51:3
    expect(parseHtbClassText(fixture('tc-class-htb-stats.txt'), 'nqtc0')).toEqual([
      {
        dev: 'nqtc0',
        classid: '4e51:10',
        parent: '4e51:1',
        leaf: '5010:',
        prio: 1,
        rateBytes: 1_187_500,
        ceilBytes: 1_250_000,
        burstBytes: 11875,
        cburstBytes: 12500,
        counters: { bytes: 4938, packets: 7, drops: 0, overlimits: 0, backlog: 0, qlen: 0 },
      },
      {
        dev: 'nqtc0',
        classid: '4e51:1',
        parent: 'root',
        rateBytes: 1_250_000,
        ceilBytes: 1_250_000,
        burstBytes: 12500,
        cburstBytes: 12500,
        counters: { bytes: 5642, packets: 15, drops: 0, overlimits: 0, backlog: 0, qlen: 0 },
      },
      {
        dev: 'nqtc0',
        classid: '4e51:3',
        parent: '4e51:1',
        leaf: '5003:',
        prio: 0,
        rateBytes: 62_500,
        ceilBytes: 1_250_000,
        burstBytes: 3028,
        cburstBytes: 12500,
        counters: { bytes: 704, packets: 8, drops: 0, overlimits: 0, backlog: 0, qlen: 0 },
      },
    ]);
  });

  it('recorded classes with children: each class gets its own counters, the parent has no prio', () => {
    const got = parseHtbClassText(fixture('tc-class-veth-classes-nqtr0.txt'), 'nqtr0');
    expect(got.map((c) => [c.classid, c.parent, c.leaf, c.prio, c.rateBytes * 8, c.ceilBytes * 8, c.counters?.bytes, c.counters?.packets])).toEqual([
      ['4e51:11', '4e51:1', '5011:', 0, 8e6, 8e6, 602, 7],
      ['4e51:1', 'root', undefined, undefined, 20e6, 20e6, 2668, 32],
      ['4e51:10', '4e51:1', '5010:', 7, 8e6, 20e6, 2066, 25],
      ['4e51:2', 'root', '5002:', 0, 100e9, 100e9, 294, 3],
      ['4e51:12', '4e51:1', '5012:', 3, 4e6, 10e6, 0, 0],
    ]);
  });

  it('drops, overlimits and a backlog in Kb are read; statistics without a class line are ignored', () => {
    const text = [
      ' Sent 5 bytes 1 pkt (dropped 9, overlimits 9 requeues 0) ',
      'class htb 4e51:11 parent 4e51:1 leaf 5011: prio 2 rate 8Mbit ceil 8Mbit burst 10000b cburst 10000b ',
      ' Sent 123456 bytes 90 pkt (dropped 4, overlimits 17 requeues 0) ',
      ' backlog 3Kb 2p requeues 0',
      ' lended: 3 borrowed: 0 giants: 0',
      'class tbf 8001:1 parent 8001: ',
      ' Sent 7 bytes 1 pkt (dropped 0, overlimits 0 requeues 0) ',
      '',
    ].join('\n');
    expect(parseHtbClassText(text, 'eth0')).toEqual([
      {
        dev: 'eth0', classid: '4e51:11', parent: '4e51:1', leaf: '5011:', prio: 2,
        rateBytes: 1e6, ceilBytes: 1e6, burstBytes: 10000, cburstBytes: 10000,
        counters: { bytes: 123456, packets: 90, drops: 4, overlimits: 17, backlog: 3072, qlen: 2 },
      },
    ]);
  });

  it('several classes, a parent, no leaf, a ceiling above the rate, rounded sizes', () => {
    const text = [
      'class htb 1:1 root rate 1Gbit ceil 1Gbit burst 1375b cburst 1375b ',
      'class htb 1:10 parent 1:1 leaf 10: prio 0 rate 1500Kbit ceil 10Mbit burst 15Kb cburst 1600b ',
      'class htb 1:20 parent 1:1 prio 3 quantum 2000 rate 8bit ceil 2Gbit linklayer ethernet burst 2Mb cburst 2Mb level 0',
      '',
    ].join('\n');
    expect(parseHtbClassText(text, 'eth0')).toEqual([
      { dev: 'eth0', classid: '1:1', parent: 'root', rateBytes: 125e6, ceilBytes: 125e6, burstBytes: 1375, cburstBytes: 1375 },
      { dev: 'eth0', classid: '1:10', parent: '1:1', leaf: '10:', prio: 0, rateBytes: 187_500, ceilBytes: 1_250_000, burstBytes: 15360, cburstBytes: 1600 },
      { dev: 'eth0', classid: '1:20', parent: '1:1', prio: 3, rateBytes: 1, ceilBytes: 250e6, burstBytes: 2 ** 21, cburstBytes: 2 ** 21 },
    ]);
  });

  it('ignores other class kinds and empty output', () => {
    expect(parseHtbClassText('', 'eth0')).toEqual([]);
    expect(parseHtbClassText('class tbf 8001:1 parent 8001: \nclass fq_codel 4e53:1 parent 4e53: \n', 'eth0')).toEqual([]);
  });

  it('an HTB class whose rate it cannot read is a KERNEL error naming the line', () => {
    const bad = 'class htb 4e51:1 root leaf 4e52: prio 0 rate 10Mbps ceil 10Mbit burst 12500b cburst 12500b';
    expect(() => parseHtbClassText(bad, 'eth0')).toThrow(NetqosError);
    expect(() => parseHtbClassText(bad, 'eth0')).toThrow(/without a readable rate: "class htb 4e51:1 root/);
  });
});
