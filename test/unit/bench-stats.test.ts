/**
 * The bench's statistics (bench/lib/stats.ts). Expected values are worked out by hand from the
 * definitions: nearest-rank percentiles, population CoV, windows cut from a counter series.
 */
import { describe, expect, it } from 'vitest';
import { summarizeRun } from '../../bench/lib/measure.js';
import { bytesAt, cov, intervalMean, percentile, relError, summarize, windows, type CounterSample } from '../../bench/lib/stats.js';

/** samples every stepMs from t = 0 with bytes = f(t) and the given backlog */
function series(untilMs: number, stepMs: number, f: (t: number) => number, backlog = 0): CounterSample[] {
  const out: CounterSample[] = [];
  for (let t = 0; t <= untilMs + 1e-9; t += stepMs) out.push({ t, bytes: Math.round(f(t)), backlog, drops: 0 });
  return out;
}

describe('percentile (nearest rank)', () => {
  const hundred = Array.from({ length: 100 }, (_, i) => i + 1); // 1..100
  it('p50 of 1..100 is 50, p99 is 99, p100 is 100', () => {
    expect(percentile(hundred, 50)).toBe(50);
    expect(percentile(hundred, 99)).toBe(99);
    expect(percentile(hundred, 100)).toBe(100);
  });
  it('p95 of 30 samples is the 29th smallest', () => {
    const thirty = Array.from({ length: 30 }, (_, i) => 30 - i); // unsorted 30..1
    expect(percentile(thirty, 95)).toBe(29);
  });
  it('lost probes (Infinity) sort last and show in a high percentile', () => {
    const s = [...Array.from({ length: 98 }, () => 1), Infinity, Infinity];
    expect(percentile(s, 98)).toBe(1);
    expect(percentile(s, 99)).toBe(Infinity);
  });
  it('rejects an empty list and p outside (0, 100]', () => {
    expect(() => percentile([], 50)).toThrow(/no samples/);
    expect(() => percentile([1], 0)).toThrow(/p must be/);
    expect(() => percentile([1], 101)).toThrow(/p must be/);
  });
});

describe('summarize', () => {
  it('median of an even count is the mean of the middle two', () => {
    const s = summarize([4, 1, 3, 2]);
    expect(s).toMatchObject({ n: 4, median: 2.5, min: 1, max: 4, mean: 2.5, p95: 4, p99: 4 });
  });
  it('odd count', () => {
    expect(summarize([5, 1, 9]).median).toBe(5);
  });
});

describe('cov', () => {
  it('a constant series has 0', () => {
    expect(cov([3, 3, 3, 3])).toBe(0);
  });
  it('population standard deviation over the mean: [1, 3] -> 1 / 2', () => {
    expect(cov([1, 3])).toBeCloseTo(0.5, 12);
  });
  it('0..218 % of the rate in alternating bins (the 1M HTB burstiness in ENVIRONMENT.md) is about 100 %', () => {
    expect(cov([0, 2.18, 0, 2.18, 0, 2.18])).toBeCloseTo(1, 12);
  });
  it('needs two values and a non-zero mean', () => {
    expect(() => cov([1])).toThrow(/two values/);
    expect(() => cov([0, 0])).toThrow(/mean is zero/);
  });
});

describe('bytesAt', () => {
  const s: CounterSample[] = [
    { t: 0, bytes: 0, backlog: 0, drops: 0 },
    { t: 100, bytes: 1000, backlog: 0, drops: 0 },
    { t: 300, bytes: 2000, backlog: 0, drops: 0 },
  ];
  it('interpolates linearly between samples and clamps outside', () => {
    expect(bytesAt(s, 50)).toBe(500);
    expect(bytesAt(s, 200)).toBe(1500);
    expect(bytesAt(s, -10)).toBe(0);
    expect(bytesAt(s, 999)).toBe(2000);
  });
});

describe('windows', () => {
  // quiet until 200 ms, then exactly 10 Mbit/s (1250 bytes/ms) for 10 s, sampled every 10 ms
  const rate = 1250;
  const s = series(11_000, 10, (t) => (t <= 200 ? 500 : 500 + Math.min(t - 200, 10_000) * rate), 3028);

  it('a constant rate reads exactly that rate: first second, steady, per second, bins', () => {
    const w = windows(s, { trafficS: 10 });
    expect(w.startT).toBe(200);
    expect(w.startUncertaintyMs).toBe(10);
    expect(w.firstSecondBps).toBeCloseTo(10e6, 0);
    expect(w.steadyBps).toBeCloseTo(10e6, 0);
    expect(w.steadyFromT).toBe(2200);
    expect(w.steadyToT).toBe(9950); // start + 10 s - 250 ms
    expect(w.backloggedShare).toBe(1);
    expect(w.bins.length).toBe(31); // (9950 - 2200) / 250 = 31
    for (const b of w.bins) expect(b).toBeCloseTo(10e6, 0);
    expect(w.perSecond.length).toBe(10);
    for (const p of w.perSecond) expect(p).toBeCloseTo(10e6, 0);
    expect(relError(w.steadyBps, 10e6)).toBeCloseTo(0, 9);
  });

  it('a burst at the start shows in the first second and not in the steady rate', () => {
    // 1.25 MB at once at 300 ms (a 10 Mbit/s bucket of 1 s), then the limit
    const b = series(11_000, 10, (t) => (t <= 200 ? 0 : (Math.min(t, 10_200) - 200) * rate + (t >= 300 ? 1_250_000 : 0)));
    const w = windows(b, { trafficS: 10 });
    expect(w.firstSecondBps).toBeCloseTo(20e6, -3);
    expect(w.steadyBps).toBeCloseTo(10e6, 0);
    expect(w.perSecond[0]).toBeCloseTo(20e6, -3);
  });

  it('the draining tail after the sender stops is outside the steady window', () => {
    // 10 s at the limit, then 50 ms of a slow trickle: the window ends at start + 9.75 s
    const d = series(11_000, 10, (t) => (t <= 200 ? 0 : Math.min(t - 200, 10_000) * rate + (t > 10_200 ? Math.min(t - 10_200, 50) * 10 : 0)));
    expect(windows(d, { trafficS: 10 }).steadyBps).toBeCloseTo(10e6, 0);
  });

  it('alternating bins give their CoV', () => {
    // 250 ms at 2x the rate, 250 ms at 0, repeated: bins alternate 20 and 0 Mbit/s
    const a = series(11_000, 10, (t) => {
      if (t <= 200) return 0;
      const x = t - 200;
      const whole = Math.floor(x / 500);
      const part = x - whole * 500;
      return whole * 500 * rate + Math.min(part, 250) * 2 * rate;
    });
    const w = windows(a, { trafficS: 10, binMs: 250 });
    // 31 bins from 2.2 s, 16 high and 15 empty: CoV = sqrt(p (1 - p)) / p with p = 16/31
    expect(w.bins.filter((b) => b > 1e6)).toHaveLength(16);
    expect(cov(w.bins)).toBeCloseTo(Math.sqrt(15 / 16), 6);
    expect(w.steadyBps).toBeCloseTo((10e6 * 16) / 15.5, 0); // 16 bins of 20 Mbit/s in 7.75 s
  });

  it('refuses a series without traffic or too short for the window', () => {
    expect(() => windows(series(5000, 10, () => 7), { trafficS: 4 })).toThrow(/never moved/);
    expect(() => windows(series(900, 10, (t) => t * rate), { trafficS: 4 })).toThrow(/less than one second/);
    expect(() => windows(series(3000, 10, (t) => t * rate), { trafficS: 2.5 })).toThrow(/steady window/);
  });
});

describe('intervalMean', () => {
  const iv = [
    { start: 0, end: 1, bytes: 5_000_000 },
    { start: 1, end: 2, bytes: 1_000_000 },
    { start: 2, end: 2.5, bytes: 625_000 },
    { start: 2.5, end: 3, bytes: 625_000 },
  ];
  it('averages bytes over time of the intervals starting at or after fromS', () => {
    expect(intervalMean(iv, 2)).toBeCloseTo(10e6, 6);
    expect(intervalMean(iv, 0)).toBeCloseTo((7_250_000 * 8) / 3, 3);
  });
  it('throws when none is left', () => {
    expect(() => intervalMean(iv, 5)).toThrow(/no iperf3 interval/);
  });
});

describe('summarizeRun', () => {
  const rate = 1250;
  const s = series(11_000, 10, (t) => (t <= 200 ? 0 : Math.min(t - 200, 10_000) * rate), 3028);
  const spec = { kind: 'tcp' as const, direction: 'egress' as const, limitBps: 10e6, seconds: 10, port: 5301 };
  it('an iperf3 client that never reported leaves the goodput unknown and keeps the counters', () => {
    const r = summarizeRun(s, 'iperf3 client (exit 137) printed no JSON', undefined, spec);
    expect(r.l2.steadyBps).toBeCloseTo(10e6, 0);
    expect(r.goodputSteadyBps).toBeNaN();
    expect(r.iperfError).toBe('iperf3 client (exit 137) printed no JSON');
  });
  it('with a report: goodput from second 2 on, retransmits, and a CoV of the 250 ms bins', () => {
    const intervals = Array.from({ length: 20 }, (_, i) => ({ start: i / 2, end: (i + 1) / 2, bytes: 597_500, bps: 9.56e6 }));
    const r = summarizeRun(s, { protocol: 'TCP', reverse: true, intervals, sentBps: 9.56e6, receivedBps: 9.5e6, sentBytes: 0, receivedBytes: 0, retransmits: 3, json: {} }, undefined, spec);
    expect(r.goodputSteadyBps).toBeCloseTo(9.56e6, 0);
    expect(r.retransmits).toBe(3);
    expect(r.l2.cov250).toBeCloseTo(0, 9);
    expect(r.iperfError).toBeUndefined();
  });
});
