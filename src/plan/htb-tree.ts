/**
 * The HTB tree one direction of one device gets. Without classes: root, one class rate = ceil,
 * a bounded leaf. With classes (netqos.io/<dir>-classes): the same class 4e51:1 as the parent
 * of one child per class plus a default child for unmatched traffic, each with its own bounded
 * leaf, and u32 filters on the root that pick the child by the peer's address. Unshaped
 * subnets (egress) go to 4e51:2, a class beside the parent that no limit applies to.
 */
import { cidrOf } from '../domain/cidr.js';
import { DEFAULT_CLASS_NAME, DEFAULT_PRIORITY } from '../domain/classes.js';
import type { Capabilities, Filter, Qdisc } from '../domain/link.js';
import type { TrafficClass } from '../domain/spec.js';
import type { ShapedClass, Shaped, TcOp } from './ops.js';
import { burstBytes, BYPASS_LEAF_RATE_BPS, BYPASS_RATE_BPS, defaultClassRate, leafQueue, quantum } from './params.js';
import {
  BYPASS_CLASS_ID,
  CLASS_ID,
  childClassId,
  childLeafHandle,
  classFilterPrio,
  DEFAULT_CHILD_ID,
  leafHandle,
  ROOT_BYPASS_PRIO,
  ROOT_HANDLE,
  rootDefault,
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
  const leaf = leafQueue(t.rateBps, t.latencyUs, t.mtu, t.maxSkb, t.caps);
  const rate = rateWord(t.rateBps);
  const ops: TcOp[] = [];
  const wantDefault = rootDefault(classes.length > 0);
  // a root with another default (classes added or all removed) is rebuilt: HTB cannot change it
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
  if (classes.length === 0) {
    ops.push({ object: 'qdisc', verb: 'replace', dev: t.dev, parent: CLASS_ID, handle: leafHandle(leaf.kind), kind: leaf.kind, options: leaf.options });
  } else {
    const children = [
      ...classes.map((c, i) => ({ name: c.name, classid: childClassId(i), rateBps: c.rateBps, ceilBps: c.ceilBps ?? c.rateBps, prio: c.priority ?? DEFAULT_PRIORITY })),
      { name: DEFAULT_CLASS_NAME, classid: DEFAULT_CHILD_ID, rateBps: defaultClassRate(t.rateBps, classes), ceilBps: t.rateBps, prio: DEFAULT_PRIORITY },
    ];
    for (const c of children) {
      const cq = quantum(c.rateBps, t.mtu);
      const cLeaf = leafQueue(c.rateBps, t.latencyUs, t.mtu, t.maxSkb, t.caps);
      ops.push(
        {
          object: 'class',
          verb: 'replace',
          dev: t.dev,
          parent: CLASS_ID,
          classid: c.classid,
          kind: 'htb',
          options: [
            'rate', rateWord(c.rateBps), 'ceil', rateWord(c.ceilBps),
            'burst', `${burstBytes(c.rateBps, t.mtu)}b`, 'cburst', `${burstBytes(c.ceilBps, t.mtu)}b`,
            'prio', String(c.prio), 'quantum', String(cq),
          ],
        },
        { object: 'qdisc', verb: 'replace', dev: t.dev, parent: c.classid, handle: childLeafHandle(c.classid, cLeaf.kind), kind: cLeaf.kind, options: cLeaf.options },
      );
      shapedClasses.push({ ...c, quantum: cq, leaf: cLeaf.describe });
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
  const keep = new Set([CLASS_ID, ...shapedClasses.map((c) => c.classid), ...(unshaped.length > 0 ? [BYPASS_CLASS_ID] : [])]);
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
  const shaped: Omit<Shaped, 'dev' | 'direction'> = { shapedOn: t.dev, rateBps: t.rateBps, burstBytes: burst, quantum: q, leaf: leaf.describe };
  if (shapedClasses.length > 0) {
    shaped.classes = shapedClasses;
    shaped.leaf = 'per class';
  }
  if (unshaped.length > 0) shaped.unshaped = [...unshaped];
  return { ops, shaped };
}

/** The root's default class minor ("0x10" as tc -json prints it). */
function htbDefault(root: Qdisc): number {
  const d = root.options?.default;
  if (typeof d === 'number') return d;
  if (typeof d === 'string') return parseInt(d, 16);
  return 1; // options not read (older callers): the tree netqos always built
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
  classes.forEach((c, i) => {
    for (const family of [4, 6] as const) add(classFilterPrio(i, family), family, c.match.cidrs, childClassId(i), c.match);
  });
  return out.sort((a, b) => a.prio - b.prio);
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
