/**
 * The layer-2 rate the shaper let through, from its byte counter sampled while traffic runs:
 * the rate tc applies (every frame's Ethernet + IP + TCP headers), not TCP goodput.
 */
import { performance } from 'node:perf_hooks';

export interface Sample {
  /** ms since the first sample: the midpoint of the read */
  t: number;
  bytes: number;
}

export interface SteadyRate {
  bps: number;
  bytes: number;
  seconds: number;
  /** sample indexes of the window */
  from: number;
  to: number;
}

/**
 * Pure. The traffic starts after the last sample before the counter first grows (t0); the
 * steady window runs from the first sample at least `fromMs` after t0 to the last sample at
 * which the traffic was certainly still running (the one before the last increase, when the
 * series ends with a quiet sample). Two counter readings, not an average of bins.
 */
export function steadyRate(samples: readonly Sample[], fromMs = 1000, minWindowMs = 500): SteadyRate {
  const grew = (i: number): boolean => samples[i]!.bytes > samples[i - 1]!.bytes;
  let first = -1;
  for (let i = 1; i < samples.length && first < 0; i++) if (grew(i)) first = i;
  if (first < 0) throw new Error(`no traffic reached the shaper (its byte counter never grew in ${samples.length} samples)`);
  let last = first;
  for (let i = samples.length - 1; i > first; i--) {
    if (grew(i)) {
      last = i;
      break;
    }
  }
  const to = last === samples.length - 1 ? last : Math.max(first, last - 1);
  const t0 = samples[first - 1]!.t;
  let from = -1;
  for (let i = first; i <= to && from < 0; i++) if (samples[i]!.t - t0 >= fromMs) from = i;
  if (from < 0 || samples[to]!.t - samples[from]!.t < minWindowMs) {
    throw new Error(`the traffic ran too short for a steady state after ${fromMs / 1000} s: run it longer`);
  }
  const bytes = samples[to]!.bytes - samples[from]!.bytes;
  const seconds = (samples[to]!.t - samples[from]!.t) / 1000;
  return { bps: (bytes * 8) / seconds, bytes, seconds, from, to };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Reads the counter every intervalMs on a fixed schedule: once before `start` (so the series
 * begins quiet), while the work `start` began runs, and after it ended until the counter
 * stands still (at most `tailSamples` more), so the series ends quiet.
 */
export async function sampleDuring<T>(
  read: () => Promise<number>,
  intervalMs: number,
  start: () => Promise<T>,
  tailSamples = 8,
): Promise<{ samples: Sample[]; result: T }> {
  const origin = performance.now();
  const samples: Sample[] = [];
  const take = async (): Promise<Sample> => {
    const t0 = performance.now() - origin;
    const bytes = await read();
    const s = { t: (t0 + performance.now() - origin) / 2, bytes };
    samples.push(s);
    return s;
  };
  await take();
  let settled = false;
  const work = start();
  work.then(
    () => (settled = true),
    () => (settled = true),
  );
  let tail = 0;
  for (let k = 1; ; k++) {
    const wait = origin + k * intervalMs - performance.now();
    if (wait > 0) await sleep(wait);
    const ending = settled;
    const prev = samples[samples.length - 1]!;
    const s = await take();
    if (ending && (s.bytes === prev.bytes || ++tail >= tailSamples)) break;
  }
  return { samples, result: await work };
}
