/**
 * The text of `tc class show` (iproute2 6.1 prints HTB classes as text even with -json), as
 * netqos status reads it: rates 1000-based, sizes 1024-based.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { NetqosError } from '../../src/domain/errors.js';
import { parseHtbClassText, readTcRate, readTcSize } from '../../src/plan/parse-class.js';

const fixture = (name: string): string => readFileSync(new URL(`../fixtures/kernel/${name}`, import.meta.url), 'utf8');

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
  it('recorded `tc -s class show` of our egress class: statistics lines are skipped', () => {
    expect(parseHtbClassText(fixture('tc-class-htb-stats.txt'), 'nqtc0')).toEqual([
      {
        dev: 'nqtc0',
        classid: '4e51:1',
        parent: 'root',
        leaf: '4e52:',
        rateBytes: 1_250_000,
        ceilBytes: 1_250_000,
        burstBytes: 12500,
        cburstBytes: 12500,
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
      { dev: 'eth0', classid: '1:10', parent: '1:1', leaf: '10:', rateBytes: 187_500, ceilBytes: 1_250_000, burstBytes: 15360, cburstBytes: 1600 },
      { dev: 'eth0', classid: '1:20', parent: '1:1', rateBytes: 1, ceilBytes: 250e6, burstBytes: 2 ** 21, cburstBytes: 2 ** 21 },
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
