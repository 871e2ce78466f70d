/**
 * The HTB tree one direction of one device gets. Without classes: root, one class rate = ceil,
 * and under it two children: small packets (4e51:3, served first) and bulk (4e51:10, the root's
 * default), each with a bounded leaf (params.ts smallShare says why). With classes (netqos.io/<dir>-classes): the same class 4e51:1 as the parent
 * of one child per class plus a default child for unmatched traffic, each with its own bounded
 * leaf, and u32 filters on the root that pick the child by the peer's address. Unshaped
 * subnets (egress) go to 4e51:2, a class beside the parent that no limit applies to.
 */
import { cidrOf } from '../domain/cidr.js';
import { DEFAULT_CLASS_NAME, DEFAULT_PRIORITY } from '../domain/classes.js';
import type { Capabilities, Filter, Qdisc } from '../domain/link.js';
import type { TrafficClass } from '../domain/spec.js';
import type { ShapedClass, Shaped, TcOp } from './ops.js';
import {
  burstBytes,
  BYPASS_LEAF_RATE_BPS,
  BYPASS_RATE_BPS,
  defaultClassRate,
  frameBytes,
  leafQueue,
  quantum,
  SMALL_PACKET_BYTES,
  smallClassRate,
} from './params.js';
import {
  BULK_CLASS_ID,
  BYPASS_CLASS_ID,
  CLASS_ID,
  childClassId,
  childLeafHandle,
  classFilterPrio,
  DEFAULT_CHILD_ID,
  ROOT_BYPASS_PRIO,
  ROOT_DEFAULT,
  ROOT_HANDLE,
  SMALL_CLASS_ID,
  SMALL_FILTER_PRIO,
} from './names.js';
import { u32Match, type Side } from './u32.js';

export interface TreeInput {
  /** the device the tree lives on (the container's device, or its ifb for ingress) */
  dev: string;
  /** our HTB root as it is now (undefined: none): HTB cannot `qdisc replace` itself in place */
  root?: Qdisc;
  rateBps: number;
  userBurstBits?: number;
  mtu: number;
  maxSkb: number;
  /**
   * the device receives skbs nobody capped at their source (an ifb: the peer's GSO output,
   * GRO'd): leaves of classes slower than such a skb per ms segment them (params.ts segments)
   */
  segment?: boolean;
  latencyUs: number;
  caps: Capabilities;
  classes?: readonly TrafficClass[];
  /** prefixes whose traffic goes around the limit (egress: on this tree) */
  unshaped?: readonly string[];
  /** which address of a packet is the peer's: dst on egress, src on ingress (the ifb) */
  side?: Side;
  /** what the device holds now: the qdiscs (children are found by their leaves) and root filters */
  qdiscs?: readonly Qdisc[];
  filters?: readonly Filter[];
}

/** A filter as planned: its priority and protocol, and the rules in it (flowid + keys). */
interface WantedPrio {
  prio: number;
  protocol: 'ip' | 'ipv6';
  rules: { words: string[]; flowid: string; keys: string[] }[];
}

const rateWord = (bps: number): string => `${Math.round(bps)}bit`;

export function htbTree(t: TreeInput): { ops: TcOp[]; shaped: Omit<Shaped, 'dev' | 'direction'> } {
  const classes = t.classes ?? [];
  const unshaped = t.unshaped ?? [];
  const burst = burstBytes(t.rateBps, t.mtu, t.userBurstBits);
  const q = quantum(t.rateBps, t.mtu);
  const rate = rateWord(t.rateBps);
  const ops: TcOp[] = [];
  const wantDefault = ROOT_DEFAULT;
  // a root with another default (one built before the small-packet class) is rebuilt: HTB
  // cannot change it
  const rootOk = t.root !== undefined && htbDefault(t.root) === wantDefault;
  if (t.root && !rootOk) ops.push({ object: 'qdisc', verb: 'delete', dev: t.dev, parent: 'root' });
  const qdiscs = rootOk ? (t.qdiscs ?? []) : [];
  const filters = rootOk ? (t.filters ?? []).filter((f) => f.parent === ROOT_HANDLE) : [];
  if (!rootOk) {
    ops.push({ object: 'qdisc', verb: 'replace', dev: t.dev, parent: 'root', handle: ROOT_HANDLE, kind: 'htb', options: ['default', wantDefault.toString(16)] });
  }

  const wanted = wantedFilters(classes, unshaped, t.side ?? 'dst');
  const inPlace = (w: WantedPrio): boolean => samePrio(w, filters.filter((f) => f.prio === w.prio));
  // stale filters go first: a class a filter points at cannot be deleted
  for (const prio of [...new Set(filters.map((f) => f.prio))].sort((a, b) => a - b)) {
    const w = wanted.find((x) => x.prio === prio);
    if (w && inPlace(w)) continue;
    const protocol = filters.find((f) => f.prio === prio)?.protocol;
    ops.push({ object: 'filter', verb: 'delete', dev: t.dev, parent: ROOT_HANDLE, prio, ...(protocol === 'ip' || protocol === 'ipv6' ? { protocol } : {}) });
  }

  ops.push({
    object: 'class',
    verb: 'replace',
    dev: t.dev,
    parent: ROOT_HANDLE,
    classid: CLASS_ID,
    kind: 'htb',
    options: ['rate', rate, 'ceil', rate, 'burst', `${burst}b`, 'cburst', `${burst}b`, 'quantum', String(q)],
  });
  const shapedClasses: ShapedClass[] = [];
  let bulkLeaf: ReturnType<typeof leafQueue> | undefined;
  const child = (
    classid: string,
    rateBps: number,
    ceilBps: number,
    prio: number,
    leafOf: { rateBps: number; maxSkb: number; segment?: false },
    cburst = burstBytes(ceilBps, t.mtu),
  ): ReturnType<typeof leafQueue> => {
    const segment = t.segment && leafOf.segment !== false ? { burstBytes: cburst } : undefined;
    const cLeaf = leafQueue(leafOf.rateBps, t.latencyUs, t.mtu, leafOf.maxSkb, t.caps, segment);
    ops.push(
      {
        object: 'class',
        verb: 'replace',
        dev: t.dev,
        parent: CLASS_ID,
        classid,
        kind: 'htb',
        options: [
          'rate', rateWord(rateBps), 'ceil', rateWord(ceilBps),
          'burst', `${burstBytes(rateBps, t.mtu)}b`, 'cburst', `${cburst}b`,
          'prio', String(prio), 'quantum', String(quantum(rateBps, t.mtu)),
        ],
      },
      { object: 'qdisc', verb: 'replace', dev: t.dev, parent: classid, handle: childLeafHandle(classid, cLeaf.kind), kind: cLeaf.kind, options: cLeaf.options },
    );
    return cLeaf;
  };
  if (classes.length === 0) {
    // bulk: guaranteed what small packets are not, its leaf sized for the whole rate (it is
    // what a bulk flow runs in); small: never GSO, so its leaf's floor is frames, not skbs
    const small = smallClassRate(t.rateBps);
    // what either may send at the limit in one go is the limit's burst (a user's burst too): a
    // leaf at its ceil sends only while its own ctokens last, whatever 4e51:1 has left
    bulkLeaf = child(BULK_CLASS_ID, Math.max(1, Math.round(t.rateBps) - small), t.rateBps, 1, { rateBps: t.rateBps, maxSkb: t.maxSkb }, burst);
    child(SMALL_CLASS_ID, small, t.rateBps, 0, { rateBps: t.rateBps, maxSkb: frameBytes(t.mtu), segment: false }, burst);
  } else {
    const children = [
      ...classes.map((c, i) => ({ name: c.name, classid: childClassId(i), rateBps: c.rateBps, ceilBps: c.ceilBps ?? c.rateBps, prio: c.priority ?? DEFAULT_PRIORITY })),
      { name: DEFAULT_CLASS_NAME, classid: DEFAULT_CHILD_ID, rateBps: defaultClassRate(t.rateBps, classes), ceilBps: t.rateBps, prio: DEFAULT_PRIORITY },
    ];
    for (const c of children) {
      const cLeaf = child(c.classid, c.rateBps, c.ceilBps, c.prio, { rateBps: c.rateBps, maxSkb: t.maxSkb });
      shapedClasses.push({ ...c, quantum: quantum(c.rateBps, t.mtu), leaf: cLeaf.describe });
    }
  }
  if (unshaped.length > 0) {
    const bLeaf = leafQueue(BYPASS_LEAF_RATE_BPS, t.latencyUs, t.mtu, t.maxSkb, t.caps);
    const bBurst = burstBytes(BYPASS_RATE_BPS, t.mtu);
    ops.push(
      {
        object: 'class',
        verb: 'replace',
        dev: t.dev,
        parent: ROOT_HANDLE,
        classid: BYPASS_CLASS_ID,
        kind: 'htb',
        options: ['rate', rateWord(BYPASS_RATE_BPS), 'ceil', rateWord(BYPASS_RATE_BPS), 'burst', `${bBurst}b`, 'cburst', `${bBurst}b`, 'quantum', String(quantum(BYPASS_RATE_BPS, t.mtu))],
      },
      { object: 'qdisc', verb: 'replace', dev: t.dev, parent: BYPASS_CLASS_ID, handle: childLeafHandle(BYPASS_CLASS_ID, bLeaf.kind), kind: bLeaf.kind, options: bLeaf.options },
    );
  }

  // classes of ours no longer wanted (found by their leaves; their filters are gone by now)
  const keep = new Set([
    CLASS_ID,
    ...(classes.length === 0 ? [BULK_CLASS_ID, SMALL_CLASS_ID] : shapedClasses.map((c) => c.classid)),
    ...(unshaped.length > 0 ? [BYPASS_CLASS_ID] : []),
  ]);
  const present = new Set(qdiscs.filter((x) => x.dev === t.dev && x.parent.startsWith(ROOT_HANDLE)).map((x) => x.parent));
  for (const classid of [...present].sort()) {
    if (!keep.has(classid)) ops.push({ object: 'class', verb: 'delete', dev: t.dev, classid, parent: '' });
  }

  for (const w of wanted) {
    if (inPlace(w)) continue;
    for (const r of w.rules) {
      ops.push({ object: 'filter', verb: 'add', dev: t.dev, parent: ROOT_HANDLE, protocol: w.protocol, prio: w.prio, kind: 'u32', options: [...r.words, 'flowid', r.flowid] });
    }
  }
  const shaped: Omit<Shaped, 'dev' | 'direction'> = { shapedOn: t.dev, rateBps: t.rateBps, burstBytes: burst, quantum: q, leaf: bulkLeaf?.describe ?? 'per class' };
  if (shapedClasses.length > 0) shaped.classes = shapedClasses;
  if (unshaped.length > 0) shaped.unshaped = [...unshaped];
  return { ops, shaped };
}

/** The root's default class minor ("0x10" as tc -json prints it). */
function htbDefault(root: Qdisc): number {
  const d = root.options?.default;
  if (typeof d === 'number') return d;
  if (typeof d === 'string') return parseInt(d, 16);
  return 1; // options not read: counted as the tree before the small-packet class (default 1), so rebuilt; discovery always reads them
}

function wantedFilters(classes: readonly TrafficClass[], unshaped: readonly string[], side: Side): WantedPrio[] {
  const out: WantedPrio[] = [];
  const add = (prio: number, family: 4 | 6, cidrs: readonly string[], flowid: string, m: Parameters<typeof u32Match>[2] = {}): void => {
    const rules = cidrs
      .map(cidrOf)
      .filter((c) => c.family === family)
      .map((c) => ({ ...u32Match(c, side, m), flowid }));
    if (rules.length > 0) out.push({ prio, protocol: family === 4 ? 'ip' : 'ipv6', rules });
  };
  for (const family of [4, 6] as const) add(ROOT_BYPASS_PRIO[family], family, unshaped, BYPASS_CLASS_ID);
  if (classes.length === 0) out.push(...smallFilters());
  classes.forEach((c, i) => {
    for (const family of [4, 6] as const) add(classFilterPrio(i, family), family, c.match.cidrs, childClassId(i), c.match);
  });
  return out.sort((a, b) => a.prio - b.prio);
}

/**
 * Small packets: IPv4 total length (offset 2) or IPv6 payload length (offset 4) below
 * SMALL_PACKET_BYTES, read as a 16-bit field whose high byte is zero. Unshaped subnets match
 * first (lower priorities); anything else (ARP, big packets) is bulk by the root's default.
 */
function smallFilters(): WantedPrio[] {
  // "under SMALL_PACKET_BYTES" = the length's high byte is zero (256 = 0x100)
  const lengthMask = 0x10000 - SMALL_PACKET_BYTES;
  const rule = (off: number, key: string) => ({ words: ['match', 'u16', '0', `0x${lengthMask.toString(16)}`, 'at', String(off)], flowid: SMALL_CLASS_ID, keys: [key] });
  return [
    // the kernel keeps 32-bit keys: a u16 at 2 is the low half of the word at 0, at 4 the high half
    { prio: SMALL_FILTER_PRIO[4], protocol: 'ip', rules: [rule(2, `00000000/${lengthMask.toString(16).padStart(8, '0')}@0`)] },
    { prio: SMALL_FILTER_PRIO[6], protocol: 'ipv6', rules: [rule(4, `00000000/${(lengthMask << 16 >>> 0).toString(16)}@4`)] },
  ];
}

/** True when the kernel holds exactly these rules at this priority (any order). */
function samePrio(w: WantedPrio, have: readonly Filter[]): boolean {
  if (have.length !== w.rules.length) return false;
  const sig = (flowid: string | undefined, proto: string | undefined, keys: readonly string[] | undefined): string =>
    `${proto ?? ''} ${flowid ?? ''} ${(keys ?? []).join(',')}`;
  const a = w.rules.map((r) => sig(r.flowid, w.protocol, r.keys)).sort();
  const b = have.map((f) => sig(f.flowid, f.protocol, f.keys)).sort();
  return a.every((x, i) => x === b[i]);
}
