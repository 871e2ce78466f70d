/**
 * RTT probes: busybox ping (the only ping on these machines) run inside a namespace, and the pure
 * parser of its output. A probe without a reply counts as an infinite RTT: a shaper that drops
 * the probes has not got a low latency.
 */
import { nsPath, programPath } from '../../test/support/fixtures.js';
import { runTracked } from './proc.js';

export interface PingResult {
  sent: number;
  /** RTT in ms per probe sent, in order; Infinity where no reply came */
  rttMs: number[];
  received: number;
}

/**
 * Pure. Parses busybox ping output ("64 bytes from A: seq=3 ttl=64 time=0.123 ms" per reply,
 * "N packets transmitted, M packets received" at the end). Duplicates keep the first reply.
 */
export function parsePing(text: string): PingResult {
  const summary = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(text);
  if (!summary) throw new Error(`ping printed no summary: ${text.trim().split('\n').slice(-2).join(' | ') || '(nothing)'}`);
  const sent = Number(summary[1]);
  const bySeq = new Map<number, number>();
  for (const m of text.matchAll(/seq=(\d+) ttl=\d+ time=([\d.]+) ms/g)) {
    const seq = Number(m[1]);
    if (!bySeq.has(seq)) bySeq.set(seq, Number(m[2]));
  }
  const rttMs: number[] = [];
  for (let seq = 0; seq < sent; seq++) rttMs.push(bySeq.get(seq) ?? Infinity);
  return { sent, rttMs, received: rttMs.filter(Number.isFinite).length };
}

export interface PingRun {
  ns: string;
  addr: string;
  count: number;
  intervalS: number;
  /** seconds to wait for replies after the last probe */
  waitS: number;
}

export async function runPing(p: PingRun): Promise<PingResult> {
  const args = [`--net=${nsPath(p.ns)}`, programPath('busybox'), 'ping', '-c', String(p.count), '-i', String(p.intervalS), '-W', String(p.waitS), p.addr];
  const r = await runTracked('/usr/bin/nsenter', args, { timeoutMs: (p.count * p.intervalS + p.waitS + 10) * 1000, comm: 'busybox' });
  return parsePing(r.stdout);
}
