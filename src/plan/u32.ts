/**
 * u32 matches for class and unshaped-subnet filters: the words tc reads, and the keys the
 * kernel will hold (value/mask@offset, as `tc -json filter show` prints them), so a re-apply
 * can tell a filter in place from one to replace. Offsets are from the network header, as
 * iproute2's u32 "ip"/"ip6" shortcuts use them; ports assume no IPv4 options and no IPv6
 * extension headers (such packets do not match and fall to the default class). Pure.
 */
import type { Cidr } from '../domain/cidr.js';
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
