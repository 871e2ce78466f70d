/**
 * Parses the TEXT of `tc [-s] class show dev X` for HTB classes. iproute2 6.1 ignores -json for
 * HTB classes (it prints text), so this is the portable way to read a class's configured rate.
 * Pure.
 *
 *   class htb 4e51:1 root leaf 4e52: prio 0 rate 10Mbit ceil 10Mbit burst 12500b cburst 12500b
 *
 * tc prints rates 1000-based (bit, Kbit, Mbit, Gbit, Tbit; Kibit... with -iec) and sizes
 * 1024-based (b, Kb, Mb, Gb) and rounds a size to a whole Kb/Mb when it is close to one, so a
 * burst read back can differ from the one configured by a few bytes.
 */
import { NetqosError } from '../domain/errors.js';
import type { Counters } from './parse-tc.js';

const RATE = /^([0-9]+(?:\.[0-9]+)?)([KMGT]?)(i?)bit$/;
const SIZE = /^([0-9]+(?:\.[0-9]+)?)([KMG]?)b$/;
const POWER: Readonly<Record<string, number>> = { '': 0, K: 1, M: 2, G: 3, T: 4 };

/** "10Mbit" -> 10_000_000 bit/s; undefined when it is not a tc rate */
export function readTcRate(text: string): number | undefined {
  const m = RATE.exec(text);
  if (!m) return undefined;
  const base = m[3] === 'i' ? 1024 : 1000;
  return Math.round(Number(m[1]) * base ** (POWER[m[2] ?? ''] ?? 0));
}

/** "12500b" -> 12500, "15Kb" -> 15360 bytes; undefined when it is not a tc size */
export function readTcSize(text: string): number | undefined {
  const m = SIZE.exec(text);
  if (!m) return undefined;
  return Math.round(Number(m[1]) * 1024 ** (POWER[m[2] ?? ''] ?? 0));
}

/** An HTB class as `tc class show` prints it (iproute2 6.1 has no JSON for htb classes). */
export interface HtbClass {
  dev: string;
  classid: string;
  parent: string;
  leaf?: string;
  /** printed for leaf classes only (HTB's inner classes have none) */
  prio?: number;
  rateBytes: number;
  ceilBytes: number;
  burstBytes: number;
  cburstBytes: number;
  /** with `tc -s`: the class's own counters (drops and backlog are its leaf queue's) */
  counters?: Counters;
}

const SENT = /^Sent (\d+) bytes (\d+) pkt \(dropped (\d+), overlimits (\d+)/;
const BACKLOG = /^backlog (\S+) (\d+)p/;

/**
 * HTB classes of one device, from `tc [-s] class show dev <dev>`. With -s, each class is
 * followed by its statistics:
 *
 *    Sent 294 bytes 3 pkt (dropped 0, overlimits 0 requeues 0)
 *    backlog 0b 0p requeues 0
 *    lended: 3 borrowed: 0 giants: 0
 */

export function parseHtbClassText(text: string, dev: string): HtbClass[] {
  const out: HtbClass[] = [];
  let last: HtbClass | undefined;
  for (const line of text.split('\n')) {
    const words = line.trim().split(/\s+/);
    if (words[0] === 'class') last = undefined;
    if (last && readStats(last, line.trim())) continue;
    if (words[0] !== 'class' || words[1] !== 'htb') continue;
    const classid = words[2];
    if (classid === undefined) continue;
    const after = (key: string): string | undefined => {
      const i = words.indexOf(key, 3);
      return i < 0 ? undefined : words[i + 1];
    };
    const rate = (key: string): number => {
      const bits = readTcRate(after(key) ?? '');
      if (bits === undefined) throw unreadable(line, key);
      return bits / 8;
    };
    const size = (key: string): number => {
      const bytes = readTcSize(after(key) ?? '');
      if (bytes === undefined) throw unreadable(line, key);
      return bytes;
    };
    const leaf = after('leaf');
    const prio = after('prio');
    last = {
      dev,
      classid,
      parent: words[3] === 'root' ? 'root' : (after('parent') ?? ''),
      ...(leaf !== undefined ? { leaf } : {}),
      ...(prio !== undefined && /^\d+$/.test(prio) ? { prio: Number(prio) } : {}),
      rateBytes: rate('rate'),
      ceilBytes: rate('ceil'),
      burstBytes: size('burst'),
      cburstBytes: size('cburst'),
    };
    out.push(last);
  }
  return out;
}

/** A statistics line of the class above it: true when it was one. */
function readStats(c: HtbClass, line: string): boolean {
  const sent = SENT.exec(line);
  if (sent) {
    c.counters = { bytes: Number(sent[1]), packets: Number(sent[2]), drops: Number(sent[3]), overlimits: Number(sent[4]), backlog: 0, qlen: 0 };
    return true;
  }
  const backlog = BACKLOG.exec(line);
  if (backlog && c.counters) {
    c.counters.backlog = readTcSize(backlog[1] ?? '') ?? 0;
    c.counters.qlen = Number(backlog[2]);
    return true;
  }
  return false;
}

function unreadable(line: string, key: string): NetqosError {
  return new NetqosError('KERNEL', `tc class show printed an HTB class without a readable ${key}: ${JSON.stringify(line.trim().slice(0, 120))}`);
}
