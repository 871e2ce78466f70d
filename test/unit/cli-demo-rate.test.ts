/**
 * steadyRate: the demo's L2 rate from sampled byte counters, the steady state from t = 1 s after
 * the traffic starts to the last sample at which it certainly still ran.
 */
import { describe, expect, it } from 'vitest';
import { steadyRate, type Sample } from '../../src/cli/demo-rate.js';

/** samples every stepMs; traffic at rateBps from startMs to endMs */
function series(count: number, stepMs: number, rateBps: number, startMs: number, endMs: number, jitterMs = 0): Sample[] {
  return Array.from({ length: count }, (_, i) => {
    const t = i * stepMs + (i % 2 ? jitterMs : 0);
    const active = Math.max(0, Math.min(t, endMs) - startMs);
    return { t, bytes: 500 + Math.floor((active * rateBps) / 8000) };
  });
}

describe('steadyRate', () => {
  it('a constant 10M from 0.1 s to 3.1 s, sampled every 250 ms, reads 10M over 1.1..2.85 s', () => {
    const s = series(16, 250, 10e6, 100, 3100);
    const r = steadyRate(s);
    // start: the last quiet sample is t=0; the first at least 1 s later is t=1000
    expect(s[r.from]!.t).toBe(1000);
    // the last increase is at t=3250 (traffic ended at 3100): the sample before, t=3000, ends the window
    expect(s[r.to]!.t).toBe(3000);
    expect(r.seconds).toBeCloseTo(2, 9);
    expect(r.bps / 10e6).toBeCloseTo(1, 4);
  });

  it("ends before the sender's closing trickle: a FIN after the data does not dilute the window", () => {
    // 10M from 0 to 2.0 s, then 415 bytes (FIN, iperf3's last exchange) at 2.3 s
    const s = series(14, 250, 10e6, 100, 2100).map((x) => (x.t >= 2300 ? { ...x, bytes: x.bytes + 415 } : x));
    const r = steadyRate(s);
    expect(s[r.to]!.t).toBe(2000);
    expect(r.bps / 10e6).toBeCloseTo(1, 4);
  });

  it('is two counter readings, so uneven sampling does not bias it', () => {
    const r = steadyRate(series(20, 250, 20e6, 300, 4300, 90));
    expect(Math.abs(r.bps / 20e6 - 1)).toBeLessThan(1e-3);
  });

  it('a series that ends while the counter still grows ends at its last sample', () => {
    const s = series(12, 250, 10e6, 100, 99_999);
    const r = steadyRate(s);
    expect(r.to).toBe(s.length - 1);
    expect(r.bps / 10e6).toBeCloseTo(1, 3);
  });

  it('the first second (slow start, the initial burst) is left out', () => {
    // 50M for the first 0.5 s, then 10M
    const s: Sample[] = Array.from({ length: 20 }, (_, i) => {
      const t = i * 250;
      const active = Math.max(0, t - 100);
      const bits = Math.min(active, 500) * 50e3 + Math.max(0, active - 500) * 10e3;
      return { t, bytes: Math.floor(bits / 8) };
    });
    expect(steadyRate(s).bps / 10e6).toBeCloseTo(1, 3);
  });

  it('no traffic, or too little of it, is an error saying so', () => {
    const flat = Array.from({ length: 10 }, (_, i) => ({ t: i * 250, bytes: 1000 }));
    expect(() => steadyRate(flat)).toThrow('no traffic reached the shaper (its byte counter never grew in 10 samples)');
    expect(() => steadyRate(series(10, 250, 10e6, 100, 1200))).toThrow(/ran too short for a steady state after 1 s/);
  });
});
