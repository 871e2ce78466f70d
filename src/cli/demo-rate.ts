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
 * series ends with a quiet sample, and not on a closing trickle). Two counter readings, not an
 * average of bins.
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
  let to = last === samples.length - 1 ? last : Math.max(first, last - 1);
  // After the data, the sender's closing packets (FIN, iperf3's last exchange) still move the
  // counter a little: a window ending on such a bin reads low (measured: 18.6 % low for a 2 s
  // demo with 250 ms samples). The data ended at the last bin running at half the median rate.
  const bins: number[] = [];
  for (let i = first + 1; i <= to; i++) bins.push(samples[i]!.bytes - samples[i - 1]!.bytes);
  const median = [...bins].sort((a, b) => a - b)[Math.floor(bins.length / 2)] ?? 0;
  while (to > first + 1 && samples[to]!.bytes - samples[to - 1]!.bytes < median / 2) to--;
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
