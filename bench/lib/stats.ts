/**
 * Pure statistics of the bench: percentiles, the coefficient of variation, and the windows cut
 * out of a qdisc byte-counter series (first second, steady state, fixed-width bins). No I/O.
 */

/** One reading of a shaper's byte counter; t in ms since the sampler started. */
export interface CounterSample {
  t: number;
  bytes: number;
  /** bytes / packets the qdisc held at that moment (a backlog means it was the bottleneck) */
  backlog: number;
  drops: number;
}

/** Nearest-rank percentile (p in 0..100) of samples; Infinity entries (lost probes) sort last. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) throw new Error('percentile: no samples');
  if (!(p > 0 && p <= 100)) throw new Error(`percentile: p must be in (0, 100], got ${p}`);
  const s = [...samples].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

export interface Summary {
  n: number;
  median: number;
  p95: number;
  p99: number;
  min: number;
  max: number;
  mean: number;
}

export function summarize(samples: readonly number[]): Summary {
  if (samples.length === 0) throw new Error('summarize: no samples');
  const s = [...samples].sort((a, b) => a - b);
  const n = s.length;
  const median = n % 2 === 1 ? s[n >> 1]! : (s[(n >> 1) - 1]! + s[n >> 1]!) / 2;
  return {
    n,
    median,
    p95: percentile(s, 95),
    p99: percentile(s, 99),
    min: s[0]!,
    max: s[n - 1]!,
    mean: s.reduce((a, b) => a + b, 0) / n,
  };
}

/** Coefficient of variation: population standard deviation / mean (0 for a constant series). */
export function cov(values: readonly number[]): number {
  if (values.length < 2) throw new Error('cov: needs at least two values');
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  if (mean === 0) throw new Error('cov: the mean is zero');
  const variance = values.reduce((a, v) => a + (v - mean) ** 2, 0) / values.length;
  return Math.sqrt(variance) / mean;
}

/** The counter's value at time t, linearly interpolated between the samples around it. */
export function bytesAt(series: readonly CounterSample[], t: number): number {
  if (series.length === 0) throw new Error('bytesAt: empty series');
  if (t <= series[0]!.t) return series[0]!.bytes;
  for (let i = 1; i < series.length; i++) {
    const b = series[i]!;
    if (b.t >= t) {
      const a = series[i - 1]!;
      return b.t === a.t ? b.bytes : a.bytes + ((b.bytes - a.bytes) * (t - a.t)) / (b.t - a.t);
    }
  }
  return series[series.length - 1]!.bytes;
}

export interface Windows {
  /** ms: the last sample before the counter first moved (the traffic began after it) */
  startT: number;
  /** ms between that quiet sample and the first one that moved: the start is somewhere in there */
  startUncertaintyMs: number;
  /**
   * bit/s over the first second: the bytes from the last quiet sample to the first sample at
   * least 1 s later, over the time between them. It reads low by at most startUncertaintyMs / 1 s.
   */
  firstSecondBps: number;
  /** bit/s between the first sample at least steadyFromS after the start and the steady end */
  steadyBps: number;
  steadyFromT: number;
  steadyToT: number;
  /** share of samples in the steady window whose shaper held a backlog */
  backloggedShare: number;
  /** bit/s in consecutive bins of binMs inside the steady window (interpolated edges) */
  bins: number[];
  /** bit/s per whole second since the start, for the rate-over-time chart */
  perSecond: number[];
}

export interface WindowOptions {
  /** the traffic's own length, s: the steady window ends this long after the start */
  trafficS: number;
  /** where the steady window begins, s after the start (2) */
  steadyFromS?: number;
  /** how much before the traffic's nominal end the steady window stops, ms (250: the sender's last writes and FIN) */
  endMarginMs?: number;
  /** bin width for the CoV, ms (250) */
  binMs?: number;
}

/**
 * Cuts the first second, the steady window and the bins out of a counter series that begins
 * before the traffic. Steady = [start + steadyFromS, start + trafficS - endMargin]: seconds 2..N
 * of the run, N the traffic's length, so the draining tail after the sender stops never counts.
 */
export function windows(series: readonly CounterSample[], opts: WindowOptions): Windows {
  const steadyFromMs = (opts.steadyFromS ?? 2) * 1000;
  const endMargin = opts.endMarginMs ?? 250;
  const binMs = opts.binMs ?? 250;
  let first = -1;
  for (let i = 1; i < series.length; i++) {
    if (series[i]!.bytes > series[i - 1]!.bytes) {
      first = i;
      break;
    }
  }
  if (first < 0) throw new Error(`the byte counter never moved in ${series.length} samples: no traffic passed the shaper`);
  const start = series[first - 1]!;
  const startT = start.t;
  const lastT = series[series.length - 1]!.t;
  const at = (ms: number): number => series.findIndex((s) => s.t - startT >= ms);
  const j1 = at(1000);
  if (j1 < 0) throw new Error('the series covers less than one second of traffic');
  const firstSecondBps = ((series[j1]!.bytes - start.bytes) * 8 * 1000) / (series[j1]!.t - startT);
  const j2 = at(steadyFromMs);
  const endT = Math.min(lastT, startT + opts.trafficS * 1000 - endMargin);
  let j3 = -1;
  for (let i = series.length - 1; i >= 0; i--) {
    if (series[i]!.t <= endT) {
      j3 = i;
      break;
    }
  }
  if (j2 < 0 || j3 < 0 || series[j3]!.t - series[j2]!.t < 500) {
    throw new Error(`less than 0.5 s of samples in the steady window (${steadyFromMs / 1000} s to ${opts.trafficS} s): run the traffic longer`);
  }
  const a = series[j2]!;
  const b = series[j3]!;
  const steadyBps = ((b.bytes - a.bytes) * 8 * 1000) / (b.t - a.t);
  let backlogged = 0;
  for (let i = j2; i <= j3; i++) if (series[i]!.backlog > 0) backlogged++;
  const bins: number[] = [];
  for (let t = a.t; t + binMs <= b.t + 1e-9; t += binMs) {
    bins.push(((bytesAt(series, t + binMs) - bytesAt(series, t)) * 8 * 1000) / binMs);
  }
  const perSecond: number[] = [];
  for (let t = startT; t + 1000 <= lastT + 1e-9; t += 1000) {
    perSecond.push((bytesAt(series, t + 1000) - bytesAt(series, t)) * 8);
  }
  return {
    startT,
    startUncertaintyMs: series[first]!.t - startT,
    firstSecondBps,
    steadyBps,
    steadyFromT: a.t,
    steadyToT: b.t,
    backloggedShare: backlogged / (j3 - j2 + 1),
    bins,
    perSecond,
  };
}

/** (measured - limit) / limit */
export const relError = (measured: number, limit: number): number => (measured - limit) / limit;

/** Mean bit/s of iperf3 intervals that start at or after fromS (the steady part of a run). */
export function intervalMean(intervals: readonly { start: number; end: number; bytes: number }[], fromS: number): number {
  const used = intervals.filter((i) => i.start >= fromS - 1e-6 && i.end > i.start);
  if (used.length === 0) throw new Error(`no iperf3 interval starts at or after ${fromS} s`);
  const bytes = used.reduce((a, i) => a + i.bytes, 0);
  const seconds = used.reduce((a, i) => a + (i.end - i.start), 0);
  return (bytes * 8) / seconds;
}
