import { describe, expect, it } from 'vitest';
import { l2Summary, parseIperf, type IperfJson, type QdiscSample } from '../support/traffic.js';

/** A series sampled every stepMs whose bytes follow bytesAt(t) (t in ms). */
function series(count: number, stepMs: number, bytesAt: (t: number) => number, jitterMs = 0): QdiscSample[] {
  const out: QdiscSample[] = [];
  for (let i = 0; i < count; i++) {
    const t = i * stepMs + (i % 2 ? jitterMs : 0);
    out.push({ t, t0: t - 1, t1: t + 1, kind: 'tbf', handle: '8001:', bytes: Math.floor(bytesAt(t)), packets: 0, drops: 0, overlimits: 0, requeues: 0, backlog: 0, qlen: 0 });
  }
  return out;
}

const MBIT = 1e6;

describe('l2Summary', () => {
  it('a constant rate from the start reads exactly that rate, first second and steady', () => {
    // quiet for 300 ms, then 100 Mbit/s (12.5 MB/s) until 5.3 s, sampled for 6 s
    const s = series(61, 100, (t) => (t <= 300 ? 1000 : 1000 + Math.min(t, 5300) * 12_500 - 300 * 12_500));
    const r = l2Summary(s, 100 * MBIT);
    expect(r.startIndex).toBe(3);
    expect(s[r.startIndex]!.t).toBe(300);
    // the traffic ends between samples 53 and 54 (5.3 s is the last increase here: sample 53)
    expect(r.endIndex).toBe(52);
    expect(r.firstSecond.bps).toBeCloseTo(100 * MBIT, -3);
    expect(r.firstSecond.seconds).toBeCloseTo(1, 6);
    expect(r.steady.bps).toBeCloseTo(100 * MBIT, -3);
    expect(Math.abs(r.steady.relError)).toBeLessThan(1e-6);
    expect(s[r.steady.from]!.t).toBe(2300);
    expect(r.totalBytes).toBe(5000 * 12_500);
    expect(r.startUncertaintyMs).toBe(100);
    expect(r.steady.backloggedShare).toBe(0);
  });

  it("the sender's closing packets after the data do not dilute the steady window", () => {
    // 10 Mbit/s with the shaper backlogged until 6.0 s, then 2 packets (FIN, iperf3's last
    // exchange) 300 ms later: the window ends at the last backlogged sample, not at the FIN
    const s = series(80, 100, (t) => (t <= 300 ? 0 : Math.min(t - 300, 5700) * 1250 + (t >= 6300 ? 415 : 0)));
    for (const x of s) if (x.t > 300 && x.t <= 6000) x.backlog = 3028;
    const r = l2Summary(s, 10 * MBIT);
    expect(s[r.endIndex]!.t).toBe(6000);
    expect(Math.abs(r.steady.relError)).toBeLessThan(1e-6);
  });

  it('uses two counter readings, not an average of bins: uneven spacing does not bias it', () => {
    // samples alternately 20 ms and 180 ms apart, 125 kB per bin: 10 Mbit/s on average, while
    // the bins read 50 and 5.6 Mbit/s, whose mean (27.8) would be far off
    const s: QdiscSample[] = [];
    let t = 0;
    for (let i = 0; i < 60; i++) {
      const bytes = i === 0 ? 0 : i * 125_000;
      s.push({ t, t0: t, t1: t, kind: 'htb', handle: '1:', bytes, packets: 0, drops: 0, overlimits: 0, requeues: 0, backlog: 0, qlen: 0 });
      t += i % 2 ? 180 : 20;
    }
    const r = l2Summary(s, 10 * MBIT);
    const bins = s.slice(r.steady.from + 1, r.steady.to + 1).map((x, k) => ((x.bytes - s[r.steady.from + k]!.bytes) * 8000) / (x.t - s[r.steady.from + k]!.t));
    const meanOfBins = bins.reduce((a, b) => a + b, 0) / bins.length;
    expect(Math.abs(r.steady.relError)).toBeLessThan(0.06); // window edges fall on short or long gaps
    expect(meanOfBins / (10 * MBIT)).toBeGreaterThan(2);
    expect(r.steady.binMinBps).toBeCloseTo(125_000 * 8 / 0.18, -3);
    expect(r.steady.binMaxBps).toBeCloseTo(50 * MBIT, -3);
  });

  it('an unshaped first burst shows in the first second and not in the steady state', () => {
    // 10 Mbit limit, but 2 MB leave at once when traffic starts (like a huge bucket)
    const s = series(60, 100, (t) => (t < 150 ? 0 : 2_000_000 + (t - 150) * 1_250));
    const r = l2Summary(s, 10 * MBIT);
    expect(r.firstSecond.bps).toBeGreaterThan(20 * MBIT);
    expect(r.firstSecond.relError).toBeGreaterThan(1);
    expect(Math.abs(r.steady.relError)).toBeLessThan(0.001);
  });

  it('a series still rising at its end ends at its last sample', () => {
    const s = series(40, 100, (t) => t * 1000);
    const r = l2Summary(s, 8 * MBIT);
    expect(r.startIndex).toBe(0);
    expect(r.endIndex).toBe(39);
    expect(r.steady.relError).toBeCloseTo(0, 6);
  });

  it('refuses series that cannot give a steady state', () => {
    expect(() => l2Summary(series(30, 100, () => 5), 1e6)).toThrow(/never increased/);
    expect(() => l2Summary(series(8, 100, (t) => t * 10), 1e6)).toThrow(/less than one second/);
    expect(() => l2Summary(series(24, 100, (t) => t * 10), 1e6)).toThrow(/less than 0.5 s/);
    expect(() => l2Summary(series(40, 100, (t) => t), 0)).toThrow(/positive/);
  });

  it('reports the share of steady-state samples that saw a backlog', () => {
    const s = series(40, 100, (t) => t * 1000).map((x, i) => ({ ...x, backlog: i % 4 === 0 ? 0 : 3028 }));
    const r = l2Summary(s, 8 * MBIT);
    expect(r.steady.backloggedShare).toBeCloseTo(15 / 20, 6); // samples 20..39: 20, 24, 28, 32, 36 were empty
  });

  it('steadyFromS moves the steady window', () => {
    const s = series(60, 100, (t) => t * 100);
    expect(s[l2Summary(s, 1e6, { steadyFromS: 3 }).steady.from]!.t).toBe(3000);
  });
});

describe('parseIperf', () => {
  it('reads TCP goodput per interval and the sums', () => {
    const json: IperfJson = {
      intervals: [
        { sum: { start: 0, end: 1, bytes: 12_000_000, bits_per_second: 96e6, retransmits: 3 } },
        { sum: { start: 1, end: 2, bytes: 12_000_000, bits_per_second: 96e6, retransmits: 0 } },
      ],
      end: { sum_sent: { bytes: 24e6, bits_per_second: 96e6, retransmits: 3 }, sum_received: { bytes: 23.9e6, bits_per_second: 95.6e6 } },
    };
    const r = parseIperf(json, false);
    expect(r.protocol).toBe('TCP');
    expect(r.intervals.map((i) => i.bps)).toEqual([96e6, 96e6]);
    expect(r.receivedBps).toBe(95.6e6);
    expect(r.retransmits).toBe(3);
  });

  it('reads UDP loss (iperf3 3.12 prints sum_sent for UDP too: the protocol comes from start)', () => {
    const r = parseIperf(
      {
        start: { test_start: { protocol: 'UDP' } },
        intervals: [],
        end: { sum_sent: { bytes: 1e6, bits_per_second: 8e6 }, sum: { bytes: 1e6, bits_per_second: 8e6, lost_percent: 1.5 } },
      },
      true,
    );
    expect(r.protocol).toBe('UDP');
    expect(r.lostPercent).toBe(1.5);
    expect(r.reverse).toBe(true);
  });
});
