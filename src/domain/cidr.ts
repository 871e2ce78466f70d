/**
 * IPv4 and IPv6 prefixes ("10.1.0.0/16", "fd00:1::/64", a bare address = a host prefix), read
 * strictly and written canonically (RFC 5952 for IPv6), so a prefix means one thing and the
 * planner can turn it into u32 match keys. Pure.
 */
import type { Checked } from './annotations.js';

export interface Cidr {
  family: 4 | 6;
  /** the network address, one number per byte (4 or 16), host bits zero */
  bytes: number[];
  prefix: number;
  /** canonical text: "10.1.0.0/16", "fd00:1::/64" */
  text: string;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

function ipv4Bytes(text: string): number[] | undefined {
  return IPV4.test(text) ? text.split('.').map(Number) : undefined;
}

function ipv6Bytes(text: string): number[] | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(text)) return undefined;
  let body = text;
  if (text.includes('.')) {
    // an embedded IPv4 address in the last 32 bits (::ffff:10.0.0.1): rewrite it as two groups
    const lastColon = text.lastIndexOf(':');
    const v4 = ipv4Bytes(text.slice(lastColon + 1));
    if (!v4) return undefined;
    const hi = ((v4[0]! << 8) | v4[1]!).toString(16);
    const lo = ((v4[2]! << 8) | v4[3]!).toString(16);
    body = `${text.slice(0, lastColon + 1)}${hi}:${lo}`;
  }
  const halves = body.split('::');
  if (halves.length > 2) return undefined;
  const groups = (s: string): number[] | undefined => {
    if (s === '') return [];
    const out: number[] = [];
    for (const g of s.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const head = groups(halves[0] ?? '');
  const rest = halves.length === 2 ? groups(halves[1] ?? '') : [];
  if (!head || !rest) return undefined;
  const given = head.length + rest.length;
  let words: number[];
  if (halves.length === 2) {
    if (given > 7) return undefined; // "::" stands for at least one group
    words = [...head, ...new Array<number>(8 - given).fill(0), ...rest];
  } else {
    if (given !== 8) return undefined;
    words = head;
  }
  return words.flatMap((w) => [w >> 8, w & 0xff]);
}

/** RFC 5952: lowercase, no leading zeros, the longest run (2+) of zero groups as "::". */
export function ipv6Text(bytes: readonly number[]): string {
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((bytes[i]! << 8) | bytes[i + 1]!);
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = (ws: number[]): string => ws.map((w) => w.toString(16)).join(':');
  if (best < 0) return hex(words);
  return `${hex(words.slice(0, best))}::${hex(words.slice(best + bestLen))}`;
}

const addressText = (family: 4 | 6, bytes: readonly number[]): string =>
  family === 4 ? bytes.join('.') : ipv6Text(bytes);

/** bytes with every bit after `prefix` cleared */
function masked(bytes: readonly number[], prefix: number): number[] {
  return bytes.map((b, i) => {
    const keep = Math.max(0, Math.min(8, prefix - 8 * i));
    return b & ((0xff << (8 - keep)) & 0xff);
  });
}

/**
 * One prefix. Host bits must be zero ("10.1.2.3/16" is refused, naming "10.1.0.0/16"): a
 * prefix with host bits set is usually a typo for a host or for another network.
 */
export function readCidr(text: string): Checked<Cidr> {
  const shown = JSON.stringify(text);
  const slash = text.indexOf('/');
  const addr = slash < 0 ? text : text.slice(0, slash);
  const lenText = slash < 0 ? undefined : text.slice(slash + 1);
  const v4 = ipv4Bytes(addr);
  const bytes = v4 ?? ipv6Bytes(addr);
  if (!bytes) return { ok: false, reason: `${shown} is not an IPv4 or IPv6 prefix` };
  const family = v4 ? 4 : 6;
  const max = family === 4 ? 32 : 128;
  if (lenText !== undefined && !/^(0|[1-9]\d{0,2})$/.test(lenText)) {
    return { ok: false, reason: `${shown} has a malformed prefix length` };
  }
  const prefix = lenText === undefined ? max : Number(lenText);
  if (prefix > max) return { ok: false, reason: `${shown} has a prefix length above ${max}` };
  const net = masked(bytes, prefix);
  const canonical = `${addressText(family, net)}/${prefix}`;
  if (net.some((b, i) => b !== bytes[i])) {
    return { ok: false, reason: `${shown} has host bits set; the network is "${canonical}"` };
  }
  return { ok: true, value: { family, bytes: net, prefix, text: canonical } };
}

/** Parses canonical text this module wrote (the spec carries text): throws on anything else. */
export function cidrOf(text: string): Cidr {
  const r = readCidr(text);
  if (!r.ok) throw new Error(`not a canonical prefix: ${text}`);
  return r.value;
}
