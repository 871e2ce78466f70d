/**
 * u32 matches for class and unshaped-subnet filters: the words tc reads, and the keys the
 * kernel will hold (value/mask@offset, as `tc -json filter show` prints them), so a re-apply
 * can tell a filter in place from one to replace. Offsets are from the network header, as
 * iproute2's u32 "ip"/"ip6" shortcuts use them; ports assume no IPv4 options and no IPv6
 * extension headers (such packets do not match and fall to the default class). Pure.
 */
import { ipv6Text, type Cidr } from '../domain/cidr.js';
import type { ClassMatch } from '../domain/spec.js';

export type Side = 'src' | 'dst';

const PROTO_NUMBER: Readonly<Record<string, number>> = { icmp: 1, tcp: 6, udp: 17, icmpv6: 58, sctp: 132 };

const hex8 = (n: number): string => (n >>> 0).toString(16).padStart(8, '0');
const key = (value: number, mask: number, off: number): string => `${hex8(value & mask)}/${hex8(mask)}@${off}`;

export interface U32Match {
  /** tc words after `u32` (before flowid) */
  words: string[];
  /** the kernel's keys, in order */
  keys: string[];
}

/** The address part: one 32-bit key per word the prefix covers (iproute2 packs it so). */
function addressKeys(c: Cidr, base: number): string[] {
  const keys: string[] = [];
  if (c.family === 4) {
    const value = c.bytes.reduce((a, b) => a * 256 + b, 0);
    const mask = c.prefix === 0 ? 0 : (0xffffffff << (32 - c.prefix)) >>> 0;
    return [key(value, mask, base)];
  }
  for (let i = 0; i < c.prefix; i += 32) {
    const bits = Math.min(32, c.prefix - i);
    const mask = (0xffffffff << (32 - bits)) >>> 0;
    const w = i / 32;
    const value = c.bytes.slice(4 * w, 4 * w + 4).reduce((a, b) => a * 256 + b, 0);
    keys.push(key(value, mask, base + 4 * w));
  }
  return keys;
}

/** A match on one prefix (the peer's address on `side`), and optionally protocol and port. */
export function u32Match(c: Cidr, side: Side, m: Pick<ClassMatch, 'protocol' | 'port'> = {}): U32Match {
  const v4 = c.family === 4;
  const fam = v4 ? 'ip' : 'ip6';
  const words = ['match', fam, side, c.text];
  const keys = addressKeys(c, v4 ? (side === 'src' ? 12 : 16) : side === 'src' ? 8 : 24);
  if (m.protocol !== undefined) {
    const n = PROTO_NUMBER[m.protocol] ?? 0;
    words.push('match', fam, 'protocol', String(n), '0xff');
    keys.push(v4 ? key(n << 16, 0x00ff0000, 8) : key(n << 8, 0x0000ff00, 4));
  }
  if (m.port !== undefined) {
    const word = side === 'src' ? 'sport' : 'dport';
    words.push('match', fam, word, String(m.port), '0xffff');
    const off = v4 ? 20 : 40;
    keys.push(side === 'src' ? key(m.port << 16, 0xffff0000, off) : key(m.port, 0x0000ffff, off));
  }
  return { words, keys };
}

/** A class filter's rule read back: what u32Match wrote, from the keys the kernel holds. */
export interface ReadMatch {
  cidr: string;
  protocol?: string;
  port?: number;
}

const PROTO_NAME: Readonly<Record<number, string>> = Object.fromEntries(Object.entries(PROTO_NUMBER).map(([k, v]) => [v, k]));
const KEY = /^([0-9a-f]{8})\/([0-9a-f]{8})@(\d+)$/;
const bitsSet = (mask: number): number => {
  let n = 0;
  for (let m = mask >>> 0; m; m = (m << 1) >>> 0) n++;
  return n;
};

/**
 * The inverse of u32Match for `netqos status`: the prefix (on `side`), protocol and port of a
 * rule from its kernel keys. undefined when the keys are not the shape netqos writes (someone
 * edited the filter), so status can say so instead of guessing.
 */
export function readU32Match(keys: readonly string[], protocol: string | undefined, side: Side): ReadMatch | undefined {
  const v4 = protocol === 'ip';
  if (!v4 && protocol !== 'ipv6') return undefined;
  const addrBase = v4 ? (side === 'src' ? 12 : 16) : side === 'src' ? 8 : 24;
  const addrWords = v4 ? 1 : 4;
  const bytes = new Array<number>(v4 ? 4 : 16).fill(0);
  let prefix = 0;
  let contiguous = true;
  const out: Partial<ReadMatch> = {};
  for (const k of keys) {
    const m = KEY.exec(k);
    if (!m) return undefined;
    const value = parseInt(m[1]!, 16);
    const mask = parseInt(m[2]!, 16);
    const off = Number(m[3]);
    const w = (off - addrBase) / 4;
    if (Number.isInteger(w) && w >= 0 && w < addrWords) {
      // words of a prefix come in order, all full but the last
      if (!contiguous || w * 32 !== prefix) return undefined;
      const bits = bitsSet(mask);
      if (bits < 32) contiguous = false;
      prefix += bits;
      for (let i = 0; i < 4; i++) bytes[4 * w + i] = (value >>> (24 - 8 * i)) & 0xff;
    } else if (v4 ? off === 8 && mask === 0x00ff0000 : off === 4 && mask === 0x0000ff00) {
      const n = v4 ? value >>> 16 : value >>> 8;
      out.protocol = PROTO_NAME[n] ?? String(n);
    } else if (off === (v4 ? 20 : 40) && mask === (side === 'src' ? 0xffff0000 : 0x0000ffff)) {
      out.port = side === 'src' ? value >>> 16 : value;
    } else {
      return undefined;
    }
  }
  const addr = v4 ? bytes.join('.') : ipv6Text(bytes);
  return { cidr: `${addr}/${prefix}`, ...out };
}

/** "198.18.0.0/24 tcp port 5432" */
export const matchText = (m: ReadMatch): string =>
  [m.cidr, m.protocol, m.port !== undefined ? `port ${m.port}` : undefined].filter((x) => x !== undefined).join(' ');
