/**
 * One measured run on a shaped container: the shaper's byte counter sampled through a kept-open
 * `tc -s -j -batch` (every 10 ms for the first 2.5 s, then every 50 ms) while iperf3 pushes
 * traffic through it, and for the latency runs busybox ping through the same direction.
 *
 * Who sends (the container's view of direction):
 *   tcp egress       : the container itself (iperf3 -R: the server in C sends to R)
 *   udp egress       : the container itself (the client in C sends to the server in R)
 *   tcp / udp ingress: R, through N, into the container
 *   rtt egress       : S, behind the container (C forwards), to R; ping C -> R
 *   rtt ingress      : R into the container; ping R -> C
 */
import { performance } from 'node:perf_hooks';
import { iperfServer, type IperfResult } from '../../test/support/traffic.js';
import { iperfClient } from './iperf.js';
import { runPing, type PingResult } from './ping.js';
import { sleep, TcStatsSession } from './proc.js';
import { intervalMean, relError, summarize, cov, windows, type CounterSample, type Windows } from './stats.js';
import type { CounterAt, Direction } from './systems.js';
import { remoteFor, type Container, type Topology } from './topo.js';

export type Kind = 'tcp' | 'rtt' | 'udp';

export interface RunSpec {
  kind: Kind;
  direction: Direction;
  limitBps: number;
  seconds: number;
  port: number;
  /** UDP: offered payload rate */
  udpBps?: number;
}

export interface RunResult {
  l2: Omit<Windows, 'bins' | 'perSecond'> & { steadyError: number; firstSecondError: number; cov250: number | null };
  perSecondBps: number[];
  bins250Bps: number[];
  goodputBps: number;
  goodputSteadyBps: number;
  retransmits?: number;
  drops: number;
  /** iperf3 gave no report (the goodput figures are NaN): why */
  iperfError?: string;
  /** udp: what the sender offered and what arrived (payload, bit/s) */
  udpOfferedBps?: number;
  udpReceivedBps?: number;
  udpLostPercent?: number;
  /** rtt */
  rtt?: { sent: number; received: number; p50: number; p90: number; p99: number; max: number; samplesMs: number[] };
  samples: number;
}

async function sampleWhile(counter: CounterAt, until: Promise<unknown>, maxMs: number, start: () => void): Promise<CounterSample[]> {
  const session = new TcStatsSession(counter.ns);
  let done = false;
  until.then(
    () => (done = true),
    () => (done = true),
  );
  const out: CounterSample[] = [];
  const origin = performance.now();
  try {
    for (let k = 0; ; k++) {
      const elapsed = performance.now() - origin;
      const step = elapsed < 2500 ? 10 : 50;
      const t0 = performance.now();
      const list = await session.read(counter.dev);
      const t1 = performance.now();
      const q = list.find((x) => x.handle === counter.handle);
      if (!q) throw new Error(`no qdisc ${counter.handle} on ${counter.dev} in ${counter.ns}`);
      out.push({ t: (t0 + t1) / 2 - origin, bytes: q.bytes ?? 0, backlog: q.backlog ?? 0, drops: q.drops ?? 0 });
      if (k === 0) start();
      if (done || elapsed > maxMs) {
        // two more readings after the sender finished, so the series ends quiet
        if (out.length > 2 && out[out.length - 1]!.bytes === out[out.length - 2]!.bytes) break;
        if (elapsed > maxMs + 5000) break;
      }
      const wait = step - (performance.now() - t0);
      if (wait > 0) await sleep(wait);
    }
  } finally {
    session.close();
  }
  return out;
}

/**
 * Probe spacing: each probe is 98 bytes at L2 both ways, and it shares the shaped link with the
 * flow whose goodput is judged; keep its share at or below 0.4 % of the limit (0.16 % at 10M)
 * while getting 100+ probes into the window.
 */
export function pingIntervalS(limitBps: number): number {
  return limitBps < 10e6 ? 0.2 : limitBps < 100e6 ? 0.05 : 0.02;
}

export async function measure(topo: Topology, c: Container, counter: CounterAt, r: RunSpec): Promise<RunResult> {
  const remote = remoteFor(topo, c);
  // the iperf3 server: in R when the traffic goes out (S or the container sends to it), else in
  // the container. TCP egress runs iperf3 -R (the container's server sends); UDP never does:
  // without -R the sending client reports what it offered and what the server received.
  const egress = r.direction === 'egress';
  const serverNs = egress && r.kind !== 'tcp' ? topo.remote : c.ns;
  const serverAddr = serverNs === topo.remote ? remote : c.ip;
  const clientNs = !egress ? topo.remote : r.kind === 'rtt' ? c.senderNs : r.kind === 'udp' ? c.ns : topo.remote;
  const reverse = egress && r.kind === 'tcp';
  const server = await iperfServer(serverNs, serverAddr, { port: r.port });
  try {
    let client: Promise<IperfResult> | undefined;
    let ping: Promise<PingResult> | undefined;
    let endSampling!: () => void;
    const trafficOver = new Promise<void>((res) => (endSampling = res));
    let markStarted!: () => void;
    const started = new Promise<void>((res) => (markStarted = res));
    const sampling = sampleWhile(counter, trafficOver, r.seconds * 1000 + 20_000, () => {
      client = iperfClient(clientNs, server, {
        seconds: r.seconds,
        ...(reverse ? { reverse: true } : {}),
        ...(r.kind === 'udp' ? { udpBps: r.udpBps ?? 2 * r.limitBps } : {}),
        intervalS: 0.5,
      });
      if (r.kind === 'rtt') {
        // probes from 2 s (the flow has saturated the shaper) to 0.5 s before the flow ends
        const intervalS = pingIntervalS(r.limitBps);
        const count = Math.max(10, Math.floor((r.seconds - 2.5) / intervalS));
        const [from, to] = r.direction === 'egress' ? [c.ns, remote] : [topo.remote, c.ip];
        ping = sleep(2000).then(() => runPing({ ns: from, addr: to, count, intervalS, waitS: 5 }));
        ping.catch(() => undefined); // awaited below; never an unhandled rejection if the client fails first
      }
      markStarted();
    });
    // a sampler that fails before its first reading never starts the traffic
    await Promise.race([started, sampling]);
    if (!client) throw new Error('the sampler ended before the traffic started');
    // The shaper's counters do not need iperf3's report. A client that never reports (measured:
    // the containerd burst at 1M queues megabytes, minutes of rate, in the TBF: the sender's
    // final exchange waits behind it past any deadline) leaves the goodput unknown, not the run.
    let iperf: IperfResult | string;
    let pingRes: PingResult | undefined;
    try {
      iperf = await client.catch((e: Error) => e.message);
      pingRes = ping ? await ping : undefined;
    } finally {
      endSampling();
    }
    const series = await sampling;
    return summarizeRun(series, iperf, pingRes, r);
  } finally {
    await server.stop();
  }
}

export function summarizeRun(series: CounterSample[], iperfOrError: IperfResult | string, ping: PingResult | undefined, r: RunSpec): RunResult {
  const iperf = typeof iperfOrError === 'string' ? undefined : iperfOrError;
  const w = windows(series, { trafficS: r.seconds, steadyFromS: 2, binMs: 250 });
  const { bins, perSecond, ...rest } = w;
  const result: RunResult = {
    l2: {
      ...rest,
      steadyError: relError(w.steadyBps, r.limitBps),
      firstSecondError: relError(w.firstSecondBps, r.limitBps),
      cov250: bins.length >= 2 && bins.some((b) => b > 0) ? cov(bins) : null,
    },
    perSecondBps: perSecond,
    bins250Bps: bins,
    goodputBps: iperf ? iperf.receivedBps : NaN,
    goodputSteadyBps: iperf ? intervalMean(iperf.intervals, 2) : NaN,
    drops: series[series.length - 1]!.drops - series[0]!.drops,
    samples: series.length,
  };
  if (typeof iperfOrError === 'string') result.iperfError = iperfOrError;
  if (iperf?.retransmits !== undefined) result.retransmits = iperf.retransmits;
  if (iperf && r.kind === 'udp') {
    result.udpOfferedBps = iperf.sentBps;
    result.udpReceivedBps = iperf.receivedBps;
    if (iperf.lostPercent !== undefined) result.udpLostPercent = iperf.lostPercent;
  }
  if (ping) {
    const s = summarize(ping.rttMs);
    const p90 = [...ping.rttMs].sort((a, b) => a - b)[Math.ceil(0.9 * ping.rttMs.length) - 1]!;
    result.rtt = { sent: ping.sent, received: ping.received, p50: s.median, p90, p99: s.p99, max: s.max, samplesMs: ping.rttMs };
  }
  return result;
}
