/**
 * The numbers of the HTB tree (src/plan/params.ts). Expected values are worked out by hand from
 * the rules in DESIGN.md / ENVIRONMENT.md, not copied from the implementation:
 *   burst = cburst = 10 ms of rate, at least 2 frames; a user burst is clamped to [2 frames, 1 s]
 *   quantum = 1 ms of rate within [1 frame, 200000]
 *   gso cap = 1 ms of rate within [2 frames, min(65536, tso_max_size)]
 *   bfifo limit = max(rate x latency, largest skb + 1 frame)
 *   fq_codel target = max(latency, 1.5 frame times), interval = max(100 ms, 20 x target)
 * The 10M..1G rows were also applied to a real HTB/bfifo (tc accepted all of them, 1k..100G).
 */
import { describe, expect, it } from 'vitest';
import { MINIMAL_CAPS, type Capabilities } from '../../src/domain/link.js';
import {
  burstBytes,
  DEFAULT_QUEUE_LATENCY_US,
  defaultGso,
  ETH_HEADER,
  frameBytes,
  gsoCap,
  leafQueue,
  segments,
  LEGACY_GSO_MAX,
  quantum,
} from '../../src/plan/params.js';

const FQ: Capabilities = { fqCodel: true, clsact: true };
const VETH_TSO = 524280; // tso_max_size of a veth on this kernel (recorded)

describe('constants', () => {
  it('a frame is the MTU plus the 14-byte Ethernet header tc counts', () => {
    expect(ETH_HEADER).toBe(14);
    expect(frameBytes(1500)).toBe(1514);
    expect(frameBytes(9000)).toBe(9014);
  });
  it('default queue latency is 5 ms and the legacy GSO maximum 64 KiB', () => {
    expect(DEFAULT_QUEUE_LATENCY_US).toBe(5000);
    expect(LEGACY_GSO_MAX).toBe(65536);
  });
});

// rate bit/s | burst | quantum | gso cap | bfifo egress (maxSkb = gso cap) | bfifo ingress (64 KiB skbs) | fq target us | fq interval us
type Row = [string, number, number, number, number, number, number, number, number];
const TABLE: Row[] = [
  ['1k', 1e3, 3028, 1514, 3028, 4542, 67050, 18_168_000, 363_360_000],
  ['1M', 1e6, 3028, 1514, 3028, 4542, 67050, 18_168, 363_360],
  ['10M', 1e7, 12_500, 1514, 3028, 6250, 67050, 5000, 100_000],
  ['100M', 1e8, 125_000, 12_500, 12_500, 62_500, 67050, 5000, 100_000],
  ['1G', 1e9, 1_250_000, 125_000, 65536, 625_000, 625_000, 5000, 100_000],
  ['10G', 1e10, 12_500_000, 200_000, 65536, 6_250_000, 6_250_000, 5000, 100_000],
  ['100G', 1e11, 125_000_000, 200_000, 65536, 62_500_000, 62_500_000, 5000, 100_000],
];

describe('table across rates (MTU 1500, veth, 5 ms latency)', () => {
  it.each(TABLE)('%s', (_name, rate, burst, q, gso, bfifoEgress, bfifoIngress, target, interval) => {
    expect(burstBytes(rate, 1500)).toBe(burst);
    expect(quantum(rate, 1500)).toBe(q);
    expect(gsoCap(rate, 1500, VETH_TSO)).toBe(gso);
    expect(leafQueue(rate, 5000, 1500, gso, MINIMAL_CAPS)).toEqual({
      kind: 'bfifo',
      options: ['limit', String(bfifoEgress)],
      describe: `bfifo ${bfifoEgress}B`,
    });
    expect(leafQueue(rate, 5000, 1500, LEGACY_GSO_MAX, MINIMAL_CAPS).options).toEqual(['limit', String(bfifoIngress)]);
    expect(leafQueue(rate, 5000, 1500, gso, FQ)).toEqual({
      kind: 'fq_codel',
      options: ['target', `${target}us`, 'interval', `${interval}us`],
      describe: `fq_codel target ${target}us`,
    });
  });

  it('burst and quantum never shrink as the rate grows', () => {
    const rates = TABLE.map((r) => r[1]);
    for (let i = 1; i < rates.length; i++) {
      expect(burstBytes(rates[i]!, 1500)).toBeGreaterThanOrEqual(burstBytes(rates[i - 1]!, 1500));
      expect(quantum(rates[i]!, 1500)).toBeGreaterThanOrEqual(quantum(rates[i - 1]!, 1500));
    }
  });
});

describe('burstBytes', () => {
  it('10 ms of rate', () => {
    expect(burstBytes(20e6, 1500)).toBe(25_000);
    expect(burstBytes(5e9, 1500)).toBe(6_250_000);
  });
  it('never below two full frames, which follow the MTU', () => {
    expect(burstBytes(1e6, 1500)).toBe(3028);
    expect(burstBytes(1e6, 9000)).toBe(18_028);
    expect(burstBytes(10e6, 9000)).toBe(18_028); // 10 ms = 12500 < 2 jumbo frames
  });
  it('rounds up to whole bytes', () => {
    expect(burstBytes(3_000_001, 1500)).toBe(3751); // 3750.0125
  });

  describe('user burst (bits) is clamped to [2 frames, 1 s of rate]', () => {
    const cases: Array<[string, number, number, number | undefined, number]> = [
      ['inside the range: taken as is', 10e6, 1500, 80_000, 10_000],
      ['a Kubernetes-style 4 GiB burst: 1 s of rate', 10e6, 1500, 2 ** 32 * 8, 1_250_000],
      ['exactly 1 s of rate', 10e6, 1500, 10e6, 1_250_000],
      ['one byte: two frames', 10e6, 1500, 8, 3028],
      ['zero: two frames', 10e6, 1500, 0, 3028],
      ['below 2 frames at MTU 9000: two jumbo frames', 100e6, 9000, 100_000, 18_028],
      ['1 s of rate below two frames (1k): two frames win', 1e3, 1500, 1e9, 3028],
      ['fractional bytes round up', 10e6, 1500, 80_001, 10_001],
      ['undefined: the 10 ms default', 10e6, 1500, undefined, 12_500],
    ];
    it.each(cases)('%s', (_what, rate, mtu, userBits, expected) => {
      expect(burstBytes(rate, mtu, userBits)).toBe(expected);
    });
  });
});

describe('quantum', () => {
  it('about 1 ms of rate', () => {
    expect(quantum(20e6, 1500)).toBe(2500);
    expect(quantum(50e6, 1500)).toBe(6250);
  });
  it('at least one frame (HTB warns "quantum of class is small" below)', () => {
    expect(quantum(1e3, 1500)).toBe(1514);
    expect(quantum(10e6, 1500)).toBe(1514);
    expect(quantum(10e6, 9000)).toBe(9014);
    expect(quantum(20e6, 9000)).toBe(9014);
  });
  it('at most 200000 ("quantum of class is big" above)', () => {
    expect(quantum(1.6e9, 1500)).toBe(200_000);
    expect(quantum(1.7e9, 1500)).toBe(200_000);
    expect(quantum(1e15, 1500)).toBe(200_000);
  });
});

describe('gsoCap', () => {
  it('10M at MTU 1500 -> 3028 (two frames), 100M -> 12500 (1 ms), 1G -> 65536', () => {
    expect(gsoCap(10e6, 1500, VETH_TSO)).toBe(3028);
    expect(gsoCap(100e6, 1500, VETH_TSO)).toBe(12_500);
    expect(gsoCap(1e9, 1500, VETH_TSO)).toBe(65_536);
  });
  it('never above the legacy 64 KiB even when the device can do BIG TCP', () => {
    expect(gsoCap(10e9, 1500, VETH_TSO)).toBe(65_536);
  });
  it('a tso_max_size below 65536 is respected (r8169: 64000; older chips 32000)', () => {
    expect(gsoCap(1e9, 1500, 64_000)).toBe(64_000);
    expect(gsoCap(1e9, 1500, 32_000)).toBe(32_000);
    expect(gsoCap(100e6, 1500, 10_000)).toBe(10_000);
    expect(gsoCap(10e6, 1500, 64_000)).toBe(3028); // below the device limit: unchanged
  });
  it('two frames follow the MTU', () => {
    expect(gsoCap(10e6, 9000, VETH_TSO)).toBe(18_028);
  });
  it('defaultGso is min(65536, tso_max_size)', () => {
    expect(defaultGso(VETH_TSO)).toBe(65_536);
    expect(defaultGso(65_536)).toBe(65_536);
    expect(defaultGso(64_000)).toBe(64_000);
  });
});

describe('leafQueue', () => {
  describe('bfifo (this kernel: no fq_codel)', () => {
    it('holds the queue latency worth of rate', () => {
      expect(leafQueue(100e6, 5000, 1500, 12_500, MINIMAL_CAPS).options).toEqual(['limit', '62500']);
      expect(leafQueue(100e6, 10_000, 1500, 12_500, MINIMAL_CAPS).options).toEqual(['limit', '125000']);
      expect(leafQueue(100e6, 2000, 1500, 12_500, MINIMAL_CAPS).options).toEqual(['limit', '25000']);
    });
    it('but always fits the largest skb plus a frame', () => {
      // 10M x 2 ms = 2500 B < 3028 + 1514
      expect(leafQueue(10e6, 2000, 1500, 3028, MINIMAL_CAPS).options).toEqual(['limit', '4542']);
      // ingress: the ifb sees 64 KiB GRO skbs
      expect(leafQueue(100e6, 5000, 1500, 65_536, MINIMAL_CAPS).options).toEqual(['limit', '67050']);
      // jumbo frames
      expect(leafQueue(20e6, 5000, 9000, 65_536, MINIMAL_CAPS).options).toEqual(['limit', '74550']);
    });
    it('rounds up to whole bytes', () => {
      expect(leafQueue(1_000_003, 1_000_000, 1500, 3028, MINIMAL_CAPS).options).toEqual(['limit', '125001']);
    });
  });

  describe('segmenting tbf (a tree that asks for it: the ifb, where skbs are GRO output)', () => {
    const seg = { burstBytes: 25_000 };
    it('below 524 Mbit/s for 64 KiB skbs: one skb is more than 1 ms of the rate', () => {
      expect(segments(524_287_999, 65_536)).toBe(true);
      expect(segments(524_288_000, 65_536)).toBe(false);
      expect(leafQueue(524_287_999, 5000, 1500, 65_536, MINIMAL_CAPS, seg).kind).toBe('tbf');
      expect(leafQueue(1e9, 5000, 1500, 65_536, MINIMAL_CAPS, seg)).toEqual(leafQueue(1e9, 5000, 1500, 65_536, MINIMAL_CAPS));
    });
    it('rate 10 x the class, bucket = the class burst + two frames, peak bucket two frames at 100 Gbit/s, queue 12 frames at least', () => {
      expect(leafQueue(20e6, 5000, 1500, 65_536, MINIMAL_CAPS, seg)).toEqual({
        kind: 'tbf',
        options: ['rate', '200000000bit', 'burst', '28028b', 'peakrate', '100000000000bit', 'mtu', '3028', 'limit', '18168'],
        describe: 'tbf (segments) 18168B',
      });
      // above 12 frames the queue is the latency of the rate, as a bfifo leaf's
      expect(leafQueue(100e6, 5000, 1500, 65_536, MINIMAL_CAPS, seg).options.slice(-2)).toEqual(['limit', '62500']);
      // jumbo frames: two 9014-byte frames per bucket, twelve in the queue
      expect(leafQueue(20e6, 5000, 9000, 65_536, MINIMAL_CAPS, seg).options).toEqual(['rate', '200000000bit', 'burst', '43028b', 'peakrate', '100000000000bit', 'mtu', '18028', 'limit', '108168']);
    });
    it('never without the tree asking (egress skbs are capped at their source by gso_max_size), never where fq_codel is the leaf', () => {
      expect(leafQueue(20e6, 5000, 1500, 65_536, MINIMAL_CAPS).kind).toBe('bfifo');
      expect(leafQueue(20e6, 5000, 1500, 65_536, FQ, seg).kind).toBe('fq_codel');
    });
  });

  describe('fq_codel (kernels that have it)', () => {
    it('target = the latency, interval at least 100 ms', () => {
      expect(leafQueue(1e9, 2000, 1500, 65_536, FQ).options).toEqual(['target', '2000us', 'interval', '100000us']);
      expect(leafQueue(1e9, 8000, 1500, 65_536, FQ).options).toEqual(['target', '8000us', 'interval', '160000us']);
    });
    it('target at least 1.5 frame times (10M: 1.5 x 1211.2 us)', () => {
      expect(leafQueue(10e6, 500, 1500, 3028, FQ).options).toEqual(['target', '1817us', 'interval', '100000us']);
    });
    it('ignores maxSkb: no byte limit to size', () => {
      expect(leafQueue(10e6, 5000, 1500, 3028, FQ)).toEqual(leafQueue(10e6, 5000, 1500, 65_536, FQ));
    });
    it('differs from the bfifo leaf for the same input', () => {
      const a = leafQueue(10e6, 5000, 1500, 3028, FQ);
      const b = leafQueue(10e6, 5000, 1500, 3028, MINIMAL_CAPS);
      expect(a.kind).toBe('fq_codel');
      expect(b.kind).toBe('bfifo');
      expect(a.options).not.toEqual(b.options);
    });
    it('clsact alone does not switch the leaf', () => {
      expect(leafQueue(10e6, 5000, 1500, 3028, { fqCodel: false, clsact: true }).kind).toBe('bfifo');
    });
  });
});
