/**
 * The numbers of the HTB tree, derived from the rate. Each formula carries the measurement that
 * chose it (ENVIRONMENT.md, measured on this project's machines).
 */
import type { Capabilities } from '../domain/link.js';

/** Ethernet header: tc counts skb->len, which includes it (and no FCS/preamble). */
export const ETH_HEADER = 14;
/** Largest skb the stack hands a device without BIG TCP (GSO/GRO legacy maximum). */
export const LEGACY_GSO_MAX = 65536;

/** Default queue latency: a bfifo of 5 ms measured 5.5/7.5 ms p50/p99 RTT at 100M under load. */
export const DEFAULT_QUEUE_LATENCY_US = 5000;

/**
 * burst = cburst = 10 ms of rate, never below two full frames.
 * Measured: HTB's default burst falls 10 to 22 % short at 5 to 10 Gbit/s and raising only one
 * of burst/cburst does not help; burst = cburst = 10 ms of rate was within 0.3 % from 10 Mbit to
 * 10 Gbit. 10 ms also bounds the first-second overshoot to 1 % (Kubernetes runtimes inject
 * 512 MiB..4 GiB, measured as a 10M container sending 1.5 Gbit in its first second).
 */
export const BURST_TIME_S = 0.01;
/** A user burst may not exceed 1 s of rate: beyond that the limit means nothing for a second. */
export const MAX_BURST_TIME_S = 1;

export const frameBytes = (mtu: number): number => mtu + ETH_HEADER;

/** The gso_max_size a device has when nobody changed it. */
export const defaultGso = (tsoMaxSize: number): number => Math.min(LEGACY_GSO_MAX, tsoMaxSize);

/**
 * gso_max_size of a device shaped on egress: about 1 ms of rate, at least two frames, at most
 * the device's default. Measured at 10M: with 64 KiB GSO skbs a local TCP sender collapsed to
 * 0.54 Mbit/s against a bfifo that holds one skb (each skb is 52 ms of rate, every second one
 * dropped); with gso_max_size 3028 it reached 9.58 Mbit/s goodput through a 5 ms (6250 B) bfifo.
 * At 1 Gbit/s and above the cap is the default: nothing changes.
 */
export function gsoCap(rateBps: number, mtu: number, tsoMaxSize: number): number {
  const perMs = Math.round(rateBps / 8 / 1000);
  return Math.min(defaultGso(tsoMaxSize), Math.max(2 * frameBytes(mtu), perMs));
}

export function burstBytes(rateBps: number, mtu: number, userBurstBits?: number): number {
  const rateBytes = rateBps / 8;
  const floor = 2 * frameBytes(mtu);
  const wanted = userBurstBits !== undefined ? userBurstBits / 8 : rateBytes * BURST_TIME_S;
  const ceiling = Math.max(floor, rateBytes * MAX_BURST_TIME_S);
  return Math.ceil(Math.min(ceiling, Math.max(floor, wanted)));
}

/**
 * HTB quantum: explicit, about 1 ms of rate, between one frame and 200 000 bytes. Left to r2q,
 * HTB derives rate/10 and warns "quantum of class is big/small" outside 1000..200000 bytes,
 * one of the problems that made the CNI plugin revert its HTB classes.
 */
export function quantum(rateBps: number, mtu: number): number {
  const perMs = Math.round(rateBps / 8 / 1000);
  return Math.min(200_000, Math.max(frameBytes(mtu), perMs));
}

export interface Leaf {
  kind: 'bfifo' | 'fq_codel' | 'tbf';
  options: string[];
  describe: string;
}

/**
 * The leaf queue holds at most `latency` of the class rate. Never the default pfifo of 1000
 * packets: measured 241 ms p50 RTT under load at 100M. A bfifo must still fit maximum-size skbs
 * (leafFloorBytes), or every GSO super-packet larger than the limit would be dropped.
 * fq_codel (where the kernel has it) bounds delay by itself: its target is the latency, but
 * at least 1.5 frame times so it does not drop at very low rates.
 */
export function leafQueue(rateBps: number, latencyUs: number, mtu: number, maxSkb: number, caps: Capabilities, segment?: Segmenting): Leaf {
  const rateBytes = rateBps / 8;
  if (caps.fqCodel) {
    const frameUs = (frameBytes(mtu) / rateBytes) * 1e6;
    const targetUs = Math.ceil(Math.max(latencyUs, 1.5 * frameUs));
    return {
      kind: 'fq_codel',
      options: ['target', `${targetUs}us`, 'interval', `${Math.max(100_000, 20 * targetUs)}us`],
      describe: `fq_codel target ${targetUs}us`,
    };
  }
  if (segment && segments(rateBps, maxSkb)) return segmentingLeaf(rateBps, latencyUs, mtu, segment.burstBytes);
  const limit = Math.ceil(Math.max(rateBytes * (latencyUs / 1e6), leafFloorBytes(maxSkb, mtu)));
  return { kind: 'bfifo', options: ['limit', String(limit)], describe: `bfifo ${limit}B` };
}

/**
 * A tree whose device receives skbs netqos cannot cap at their source (an ifb: GRO output of
 * the peer's 64 KiB TSO skbs) asks its leaves to segment them (htbTree's `segment`).
 */
export interface Segmenting {
  /** the most the leaf's class may send at once (its cburst): the segmenter never holds that back */
  burstBytes: number;
}

/**
 * Segment when one maximum-size skb is more than 1 ms of the rate: below 524 Mbit/s for 64 KiB.
 * HTB sends and charges a skb whole, so a 64 KiB GRO skb at 1M is half a second of the limit in
 * one go: measured (bench, 1M ingress, bfifo leaf) 250 ms bins with a CoV of 21.8 and 28.3 %
 * and a first second 6.9 and 28.7 % over the limit, and a single TCP stream at 10 to 40M now and
 * then 6 to 7 % short (the leaf held one skb, the next was dropped whole).
 */
export const segments = (rateBps: number, maxSkb: number): boolean => rateBps < maxSkb * 8 * 1000;

/** At least twelve frames queued after segmenting: measured with a local cubic sender at 10M, 3 frames 74 %, 6 frames 87 %, 10 frames 95.0 %, 12 frames 95.5 % goodput. */
export const SEGMENTED_MIN_FRAMES = 12;
/** The segmenter's peak rate: far above any class it sits in (a frame every 121 ns). */
export const SEGMENTER_PEAK_BPS = 100e9;
/** The segmenter's own rate as a multiple of the class rate: it never holds a packet back. */
export const SEGMENTER_RATE_FACTOR = 10;

/**
 * A TBF that only segments: TBF cuts every GSO skb longer than its max_size, the smaller of its
 * bucket and its peak bucket (`mtu` at `peakrate`), into frames. The peak bucket is two frames
 * (the kernel rounds it to 64 ns ticks: about 2400 bytes at 100 Gbit/s), so any skb of two or
 * more segments is cut; its rate (ten times the class) and bucket (the class's burst and two
 * frames) are more than HTB ever lets through, so it never holds a frame back. Its queue (the
 * bfifo inside TBF) holds the latency of the rate, at least SEGMENTED_MIN_FRAMES frames.
 */
function segmentingLeaf(rateBps: number, latencyUs: number, mtu: number, classBurst: number): Leaf {
  const frame = frameBytes(mtu);
  const limit = Math.ceil(Math.max((rateBps / 8) * (latencyUs / 1e6), SEGMENTED_MIN_FRAMES * frame));
  return {
    kind: 'tbf',
    options: [
      'rate', `${Math.round(SEGMENTER_RATE_FACTOR * rateBps)}bit`,
      'burst', `${classBurst + 2 * frame}b`,
      'peakrate', `${SEGMENTER_PEAK_BPS}bit`,
      'mtu', String(2 * frame),
      'limit', String(limit),
    ],
    describe: `tbf (segments) ${limit}B`,
  };
}

/**
 * The least a bfifo leaf holds: one maximum-size skb and a frame. Room for two would keep a
 * single local TCP stream at 20 to 40 Mbit/s ingress from falling short now and then (while a
 * 64 KiB GRO skb waits, the next is dropped whole), but measured in the bench at 10M ingress
 * (remote-like sender) it made the flow lumpier: first second +3.9 and +5.6 % (target +2 %),
 * CoV of 250 ms bins 5.7 % against 2.5 %. Small packets do not wait behind it (smallShare).
 */
export const leafFloorBytes = (maxSkb: number, mtu: number): number => maxSkb + frameBytes(mtu);

/**
 * Without classes, small packets get their own class beside the bulk class under the limit,
 * served first: IP packets shorter than SMALL_PACKET_BYTES (a ping is 84, a TCP ACK 52 to 72,
 * DNS 60 to 200). Measured (bench, remote-like cubic sender saturating 10M, busybox ping through
 * it): in one FIFO the ping waits behind the queue, p99 5.5 to 6.1 ms; a queue short enough
 * for 5 ms costs a local sender goodput (3 frames: 74 %). In their own class they wait for at
 * most the packet being sent. The class is guaranteed SMALL_SHARE of the limit (its own tokens,
 * so it sends while the bulk class waits for a 64 KiB skb's worth of tokens) and may borrow up
 * to all of it; the bulk class is guaranteed the rest and borrows what small packets leave. The
 * total stays the limit: both are charged to 4e51:1.
 */
export const SMALL_PACKET_BYTES = 256;
export const SMALL_SHARE = 0.05;
export const smallClassRate = (rateBps: number): number => Math.max(1, Math.round(rateBps * SMALL_SHARE));

/**
 * The class unshaped subnets go to (4e51:2, beside the limited parent): a rate no container
 * device reaches, so HTB never holds its packets back. Measured on veth (test/integration/
 * classes.test.ts): traffic to an unshaped subnet ran far above the container's limit while
 * other traffic stayed at it.
 */
export const BYPASS_RATE_BPS = 100e9;
/**
 * Its leaf holds queue-latency of 10 Gbit/s, the fastest rate netqos plans shaping for: it only
 * fills when the device itself is slower than that, and stays bounded in time there.
 */
export const BYPASS_LEAF_RATE_BPS = 10e9;

/**
 * The default class (unmatched traffic) is guaranteed what the named classes leave of the
 * total, but at least 1 % of it (HTB needs a rate; 1 % keeps ARP, DNS and the like moving when
 * the named classes take everything), and may borrow up to the total.
 */
export function defaultClassRate(totalBps: number, classes: readonly { rateBps: number }[]): number {
  const left = totalBps - classes.reduce((s, c) => s + c.rateBps, 0);
  return Math.max(left, Math.ceil(totalBps / 100));
}
