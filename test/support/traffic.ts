/**
 * Bounded traffic and measurement between our namespaces: iperf3 server/client with deadlines,
 * qdisc byte-counter sampling (the layer-2 rate tc shapes), and the pure l2Summary that turns a
 * sample series into steady-state and first-second rates.
 *
 * Why qdisc counters: iperf3 reports TCP goodput (about 95.6 % of L2 for full frames), interface
 * counters count a GSO super-packet's headers once; a qdisc's `bytes` counts every frame's
 * Ethernet + IP + TCP headers, which is exactly what tc's rate applies to (ENVIRONMENT.md).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { inNetns } from '../../src/kernel/netns.js';
import { run } from '../../src/kernel/runner.js';
import { toolPath } from '../../src/kernel/tools.js';
import { nsRef, pidAlive, programPath, registerFile, registerPid, unregisterPid } from './fixtures.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// ping

export interface PingOptions {
  count?: number;
  /** per-reply wait, seconds (busybox -W) */
  waitS?: number;
}

/** busybox ping (bookworm has no iputils here) from inside ns; true when every probe answered. */
export async function ping(ns: string, addr: string, opts: PingOptions = {}): Promise<boolean> {
  const count = opts.count ?? 1;
  const waitS = opts.waitS ?? 1;
  const args = ['ping', '-q', '-c', String(count), '-W', String(waitS), '-i', '0.2', addr];
  const res = await run(toolPath('nsenter'), [`--net=/run/netns/${ns}`, programPath('busybox'), ...args], {
    allowFail: true,
    timeoutMs: (count * 0.2 + waitS + 3) * 1000,
  });
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(res.stdout);
  return res.code === 0 && !!m && m[1] === m[2];
}

// ---------------------------------------------------------------------------------------------
// iperf3

export interface IperfServer {
  ns: string;
  addr: string;
  port: number;
  pid: number;
  logFile: string;
  /** kills the server if still running (cleanupAll does it too) */
  stop(): Promise<void>;
}

export interface IperfServerOptions {
  port?: number;
  /** how long to wait for the listening socket, ms (default 5000) */
  readyTimeoutMs?: number;
}

/**
 * `iperf3 -s -1` (one test, then exit) bound to bindAddr inside ns, daemonized with a pid file
 * so the runner returns at once; the pid is registered (cleanupAll kills it) and the promise
 * resolves once the socket listens.
 */
export async function iperfServer(ns: string, bindAddr: string, opts: IperfServerOptions = {}): Promise<IperfServer> {
  const port = opts.port ?? 5201;
  const tag = `nqt-iperf-${ns}-${port}-${randomBytes(3).toString('hex')}`;
  const pidFile = join(tmpdir(), `${tag}.pid`);
  const logFile = join(tmpdir(), `${tag}.log`);
  registerFile(pidFile);
  registerFile(logFile);
  await inNetns(nsRef(ns), 'iperf3', ['-s', '-1', '-D', '-B', bindAddr, '-p', String(port), '-I', pidFile, '--logfile', logFile], {
    timeoutMs: 5000,
  });
  const readyBy = Date.now() + (opts.readyTimeoutMs ?? 5000);
  let pid = 0;
  while (Date.now() < readyBy) {
    // the daemon writes its pid file after forking: the runner returned before that
    const text = existsSync(pidFile) ? readFileSync(pidFile, 'utf8').trim() : '';
    if (/^\d+$/.test(text)) {
      pid = Number(text);
      break;
    }
    await sleep(10);
  }
  if (!pid) throw new Error(`iperf3 server in ${ns} wrote no pid file within the deadline; log: ${readLog(logFile)}`);
  registerPid(pid, 'iperf3');
  while (!listening(pid, port)) {
    if (!pidAlive(pid, 'iperf3')) throw new Error(`iperf3 server in ${ns} exited: ${readLog(logFile)}`);
    if (Date.now() > readyBy) throw new Error(`iperf3 server in ${ns} not listening on ${bindAddr}:${port} in time`);
    await sleep(10);
  }
  return {
    ns,
    addr: bindAddr,
    port,
    pid,
    logFile,
    async stop() {
      if (pidAlive(pid, 'iperf3')) {
        process.kill(pid, 'SIGKILL');
        for (let i = 0; i < 100 && pidAlive(pid, 'iperf3'); i++) await sleep(10);
      }
      unregisterPid(pid);
    },
  };
}

function readLog(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-3).join(' | ');
  } catch {
    return '(no log)';
  }
}

/** /proc/<pid>/net/tcp{,6} list the sockets of that process's namespace: state 0A is LISTEN. */
function listening(pid: number, port: number): boolean {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  for (const f of ['tcp', 'tcp6']) {
    let text = '';
    try {
      text = readFileSync(`/proc/${pid}/net/${f}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[1]?.endsWith(`:${hexPort}`) && cols[3] === '0A') return true;
    }
  }
  return false;
}

export interface IperfClientOptions {
  /** test length (iperf3 -t) */
  seconds: number;
  /** -R: the server sends, the client (in ns) receives */
  reverse?: boolean;
  /** UDP at this many bit/s (-u -b) instead of TCP */
  udpBps?: number;
  /** report interval in seconds (-i), default 1 */
  intervalS?: number;
  /** parallel streams (-P) */
  parallel?: number;
  /** extra deadline on top of `seconds`, ms (default 15000) */
  graceMs?: number;
}

export interface IperfInterval {
  start: number;
  end: number;
  bytes: number;
  /** goodput of this interval, bit/s */
  bps: number;
  retransmits?: number;
}

export interface IperfResult {
  protocol: 'TCP' | 'UDP';
  reverse: boolean;
  /** per-interval goodput as the client saw it (what it sent, or with reverse what it received) */
  intervals: IperfInterval[];
  sentBps: number;
  receivedBps: number;
  sentBytes: number;
  receivedBytes: number;
  retransmits?: number;
  lostPercent?: number;
  /** the whole parsed iperf3 -J document */
  json: IperfJson;
}

/** The parts of iperf3 3.12's -J output used here; the rest is passed through untyped. */
export interface IperfJson {
  error?: string;
  start?: { test_start?: { protocol?: string; duration?: number; reverse?: number } };
  intervals?: { sum: { start: number; end: number; bytes: number; bits_per_second: number; retransmits?: number } }[];
  end?: {
    sum_sent?: { bytes: number; bits_per_second: number; retransmits?: number };
    sum_received?: { bytes: number; bits_per_second: number; lost_percent?: number };
    sum?: { bytes: number; bits_per_second: number; lost_percent?: number };
  };
  [key: string]: unknown;
}

/** Runs an iperf3 client in ns against server (always -J, always under a deadline). */
export async function iperfClient(
  ns: string,
  server: Pick<IperfServer, 'addr' | 'port'>,
  opts: IperfClientOptions,
): Promise<IperfResult> {
  if (!(opts.seconds > 0 && opts.seconds <= 300)) throw new Error('iperfClient: seconds must be in (0, 300]');
  const args = ['-c', server.addr, '-p', String(server.port), '-t', String(opts.seconds), '-J'];
  args.push('-i', String(opts.intervalS ?? 1), '--connect-timeout', '3000');
  if (opts.reverse) args.push('-R');
  if (opts.udpBps) args.push('-u', '-b', String(Math.round(opts.udpBps)));
  if (opts.parallel && opts.parallel > 1) args.push('-P', String(opts.parallel));
  const res = await inNetns(nsRef(ns), 'iperf3', args, {
    allowFail: true,
    timeoutMs: opts.seconds * 1000 + (opts.graceMs ?? 15_000),
  });
  let json: IperfJson;
  try {
    json = JSON.parse(res.stdout) as IperfJson;
  } catch {
    throw new Error(`iperf3 client in ${ns} (exit ${res.code}) printed no JSON: ${res.stderr.trim() || res.stdout.slice(0, 200)}`);
  }
  if (json.error || res.code !== 0) throw new Error(`iperf3 client in ${ns} failed (exit ${res.code}): ${json.error ?? res.stderr.trim()}`);
  return parseIperf(json, !!opts.reverse);
}

/** Pure: the summary of an iperf3 -J document. */
export function parseIperf(json: IperfJson, reverse: boolean): IperfResult {
  const declared = json.start?.test_start?.protocol;
  const udp = declared ? declared === 'UDP' : !json.end?.sum_sent && !!json.end?.sum;
  const intervals = (json.intervals ?? []).map(({ sum }) => ({
    start: sum.start,
    end: sum.end,
    bytes: sum.bytes,
    bps: sum.bits_per_second,
    ...(sum.retransmits !== undefined ? { retransmits: sum.retransmits } : {}),
  }));
  const sent = json.end?.sum_sent ?? json.end?.sum;
  const received = json.end?.sum_received ?? json.end?.sum;
  const result: IperfResult = {
    protocol: udp ? 'UDP' : 'TCP',
    reverse,
    intervals,
    sentBps: sent?.bits_per_second ?? 0,
    receivedBps: received?.bits_per_second ?? 0,
    sentBytes: sent?.bytes ?? 0,
    receivedBytes: received?.bytes ?? 0,
    json,
  };
  if (json.end?.sum_sent?.retransmits !== undefined) result.retransmits = json.end.sum_sent.retransmits;
  const lost = json.end?.sum?.lost_percent ?? json.end?.sum_received?.lost_percent;
  if (udp && lost !== undefined) result.lostPercent = lost;
  return result;
}

// ---------------------------------------------------------------------------------------------
// qdisc counters

/** 'root', 'ingress', or a handle such as '1:' / '10:' / 'ffff:' ('1' means '1:') */
export type QdiscSelector = string;

export interface QdiscSample {
  /** ms since sampling began: the midpoint of t0 and t1 */
  t: number;
  /** ms since sampling began, just before / just after the read */
  t0: number;
  t1: number;
  kind: string;
  handle: string;
  bytes: number;
  packets: number;
  drops: number;
  overlimits: number;
  requeues: number;
  backlog: number;
  qlen: number;
  /** L2 rate since the previous sample, bit/s (absent on the first sample) */
  bps?: number;
}

export interface SampleOptions {
  /**
   * stop after this long (ms). After any stop signal the sampler goes on until a sample shows
   * no new bytes (at most 20 more samples), so the series ends with a quiet reading.
   */
  durationMs?: number;
  /** stop when this settles (e.g. the iperf3 client's promise) */
  until?: Promise<unknown>;
  /**
   * called right after the first sample (so the series surely begins before the traffic);
   * sampling stops when the promise it returns settles
   */
  start?: () => Promise<unknown>;
  /** hard cap whatever else is given (default 300 000 ms) */
  maxDurationMs?: number;
}

/** tc -s -j qdisc fields, as iproute2 6.1 prints them */
export interface TcQdiscStats {
  kind: string;
  handle: string;
  root?: boolean;
  parent?: string;
  bytes?: number;
  packets?: number;
  drops?: number;
  overlimits?: number;
  requeues?: number;
  backlog?: number;
  qlen?: number;
}

function matches(q: TcQdiscStats, sel: QdiscSelector): boolean {
  if (sel === 'root') return q.root === true;
  if (sel === 'ingress') return q.kind === 'ingress' || q.kind === 'clsact';
  const want = sel.includes(':') ? sel : `${sel}:`;
  return q.handle === want;
}

/** One read of a qdisc's counters (throws when the device or qdisc is not there). */
export async function readQdisc(ns: string, dev: string, sel: QdiscSelector): Promise<TcQdiscStats> {
  const r = await inNetns(nsRef(ns), 'tc', ['-s', '-j', 'qdisc', 'show', 'dev', dev], { timeoutMs: 3000 });
  const list = JSON.parse(r.stdout || '[]') as TcQdiscStats[];
  const q = list.find((x) => matches(x, sel));
  if (!q) throw new Error(`no qdisc ${sel} on ${dev} in ${ns}: ${list.map((x) => `${x.kind} ${x.handle}`).join(', ') || 'none'}`);
  return q;
}

/**
 * Reads `tc -s -j qdisc show dev <dev>` in ns every intervalMs (on a fixed schedule from the
 * start, so no drift) while traffic runs, and returns the counters with timestamps taken just
 * before and after each read (t = midpoint) and the L2 rate of each interval. Start it before
 * the traffic: l2Summary finds the start as the first sample where bytes increase.
 */
export async function sampleQdiscBytes(
  ns: string,
  dev: string,
  qdisc: QdiscSelector,
  intervalMs: number,
  opts: SampleOptions = {},
): Promise<QdiscSample[]> {
  if (!(intervalMs >= 10)) throw new Error('sampleQdiscBytes: intervalMs must be at least 10');
  if (opts.durationMs === undefined && opts.until === undefined && opts.start === undefined) {
    throw new Error('sampleQdiscBytes: give durationMs, until or start');
  }
  const cap = Math.min(opts.maxDurationMs ?? 300_000, opts.durationMs ?? Infinity);
  let done = false;
  const stopOn = (p: Promise<unknown>): void => {
    p.then(
      () => (done = true),
      () => (done = true),
    );
  };
  if (opts.until) stopOn(opts.until);
  const origin = performance.now();
  const series: QdiscSample[] = [];
  let tail = 0;
  for (let k = 0; ; k++) {
    const due = origin + k * intervalMs;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    const stopping = done || performance.now() - origin >= cap;
    const t0 = performance.now() - origin;
    const q = await readQdisc(ns, dev, qdisc);
    const t1 = performance.now() - origin;
    const s: QdiscSample = {
      t: (t0 + t1) / 2,
      t0,
      t1,
      kind: q.kind,
      handle: q.handle,
      bytes: q.bytes ?? 0,
      packets: q.packets ?? 0,
      drops: q.drops ?? 0,
      overlimits: q.overlimits ?? 0,
      requeues: q.requeues ?? 0,
      backlog: q.backlog ?? 0,
      qlen: q.qlen ?? 0,
    };
    const prev = series[series.length - 1];
    if (prev && s.t > prev.t) s.bps = ((s.bytes - prev.bytes) * 8 * 1000) / (s.t - prev.t);
    series.push(s);
    // after the stop signal, go on until the counter stands still (the traffic, queue included,
    // is over: l2Summary can then tell the last full interval), at most 20 more samples
    if (stopping && (!prev || s.bytes === prev.bytes || ++tail > 20)) return series;
    if (k === 0 && opts.start) stopOn(opts.start());
  }
}

// ---------------------------------------------------------------------------------------------
// l2Summary (pure)

export interface RateWindow {
  /** sample indexes the window runs between */
  from: number;
  to: number;
  bytes: number;
  seconds: number;
  bps: number;
  /** (bps - limit) / limit */
  relError: number;
}

export interface L2Summary {
  limitBps: number;
  /** index of the last sample before the bytes counter first increased: traffic starts after it */
  startIndex: number;
  /** index of the last sample at which traffic was certainly still running */
  endIndex: number;
  /** ms, from series[startIndex].t to series[endIndex].t */
  durationMs: number;
  /** bytes counted from the start sample to the first sample at least 1 s later */
  firstSecond: RateWindow;
  /**
   * counters at the first sample at least steadyFromS after the start, and at the end; the
   * smallest and largest bin in that window; and the share of its samples that saw a backlog
   * (near 1 when the shaper was the bottleneck all along; low when the sender starved it)
   */
  steady: RateWindow & { binMinBps: number; binMaxBps: number; backloggedShare: number };
  /** ms between the last quiet sample and the first increase: the first second starts somewhere in there */
  startUncertaintyMs: number;
  totalBytes: number;
}

export interface L2SummaryOptions {
  /** where the steady state begins, seconds after the start (default 2) */
  steadyFromS?: number;
}

/**
 * Pure. The first-second window begins at the last quiet sample, up to one interval before the
 * traffic really starts, so its rate can read low by up to intervalMs / 1000 of itself
 * (startUncertaintyMs says how much): sample at 100 ms or finer when the first second matters.
 * Start: the traffic begins between the last sample whose bytes equal the first reading
 * and the next one (the first sample where bytes increase); counting from that last quiet
 * sample includes every byte, the initial burst too. End: if the series ends with samples where
 * bytes no longer increase, the traffic stopped between the last increase and the one before,
 * so the end is the sample before the last increase; otherwise the last sample. Steady rate =
 * (bytes[end] - bytes[j2]) / (t[end] - t[j2]) with j2 the first sample at least steadyFromS
 * after the start: two counter readings, not an average of bins.
 */
export function l2Summary(series: readonly QdiscSample[], limitBps: number, opts: L2SummaryOptions = {}): L2Summary {
  if (!(limitBps > 0)) throw new Error('l2Summary: limitBps must be positive');
  const steadyFromMs = (opts.steadyFromS ?? 2) * 1000;
  let first = -1;
  for (let i = 1; i < series.length; i++) {
    if (series[i]!.bytes > series[i - 1]!.bytes) {
      first = i;
      break;
    }
  }
  if (first < 0) throw new Error(`l2Summary: the bytes counter never increased in ${series.length} samples`);
  const start = first - 1;
  let last = first;
  for (let i = series.length - 1; i > first; i--) {
    if (series[i]!.bytes > series[i - 1]!.bytes) {
      last = i;
      break;
    }
  }
  let end = last === series.length - 1 ? last : Math.max(first, last - 1);
  // The sender's closing packets (FIN, iperf3's final exchange) trickle in after the data and
  // move the counter once more: measured at 10M egress, a window ending there read 1.5 % low
  // though every 100 ms bin was at the limit. When the shaper held a backlog within the last
  // few samples, the data ended at the last such sample.
  for (let i = end; i > Math.max(first, end - 5); i--) {
    if (series[i]!.backlog > 0 || series[i]!.qlen > 0) {
      end = i;
      break;
    }
  }
  const s0 = series[start]!;
  const window = (from: number, to: number): RateWindow => {
    const a = series[from]!;
    const b = series[to]!;
    const bytes = b.bytes - a.bytes;
    const seconds = (b.t - a.t) / 1000;
    const bps = seconds > 0 ? (bytes * 8) / seconds : 0;
    return { from, to, bytes, seconds, bps, relError: (bps - limitBps) / limitBps };
  };
  const at = (ms: number): number => {
    for (let i = start; i <= end; i++) if (series[i]!.t - s0.t >= ms) return i;
    return -1;
  };
  const j1 = at(1000);
  if (j1 < 0) throw new Error('l2Summary: the traffic lasted less than one second of samples');
  const j2 = at(steadyFromMs);
  if (j2 < 0 || series[end]!.t - series[j2]!.t < 500) {
    throw new Error(`l2Summary: less than 0.5 s of samples after ${steadyFromMs / 1000} s: run the traffic longer`);
  }
  let backlogged = 0;
  for (let i = j2; i <= end; i++) if (series[i]!.backlog > 0 || series[i]!.qlen > 0) backlogged++;
  const bins: number[] = [];
  for (let i = j2 + 1; i <= end; i++) {
    const a = series[i - 1]!;
    const b = series[i]!;
    if (b.t > a.t) bins.push(((b.bytes - a.bytes) * 8 * 1000) / (b.t - a.t));
  }
  return {
    limitBps,
    startIndex: start,
    endIndex: end,
    durationMs: series[end]!.t - s0.t,
    firstSecond: window(start, j1),
    steady: { ...window(j2, end), binMinBps: Math.min(...bins), binMaxBps: Math.max(...bins), backloggedShare: backlogged / (end - j2 + 1) },
    startUncertaintyMs: series[first]!.t - s0.t,
    totalBytes: series[series.length - 1]!.bytes - s0.bytes,
  };
}

// ---------------------------------------------------------------------------------------------
// one measured run

export interface MeasureOptions {
  /** namespace and device whose qdisc counts the traffic, e.g. the sender's eth0 root */
  sample: { ns: string; dev: string; qdisc: QdiscSelector };
  /** client namespace and the server (started with iperfServer) */
  clientNs: string;
  server: Pick<IperfServer, 'addr' | 'port'>;
  seconds: number;
  reverse?: boolean;
  udpBps?: number;
  parallel?: number;
  intervalMs?: number;
  limitBps: number;
}

/** Samples the qdisc while an iperf3 client runs; returns goodput, the series and its L2 summary. */
export async function measureL2(o: MeasureOptions): Promise<{ iperf: IperfResult; series: QdiscSample[]; l2: L2Summary }> {
  let client: Promise<IperfResult> | undefined;
  const series = await sampleQdiscBytes(o.sample.ns, o.sample.dev, o.sample.qdisc, o.intervalMs ?? 100, {
    start: () => {
      client = iperfClient(o.clientNs, o.server, {
        seconds: o.seconds,
        ...(o.reverse ? { reverse: true } : {}),
        ...(o.udpBps ? { udpBps: o.udpBps } : {}),
        ...(o.parallel ? { parallel: o.parallel } : {}),
      });
      return client;
    },
    maxDurationMs: o.seconds * 1000 + 20_000,
  });
  if (!client) throw new Error('measureL2: the client never started');
  const iperf = await client;
  return { iperf, series, l2: l2Summary(series, o.limitBps) };
}
