/**
 * What `netqos status` shows, built from what the kernel reported, and rendered as a table or
 * JSON. Pure. Egress lives on the device itself, ingress on its ifb nqi<ifindex>; on either,
 * the configured rate comes from our HTB class (4e51:1), bytes / packets / overlimits from our
 * HTB root (4e51:) and drops / backlog from the leaf queues under it, where they happen (without
 * classes: the bulk and small-packet leaves, shown as the bulk leaf).
 *
 * With classes (netqos.io/<dir>-classes) each child class gets its own row: the kernel keeps no
 * class names, so a class is named by its place in the annotation (4e51:11 is "#1", 4e51:12
 * "#2", ...; see names.ts), "default" (4e51:10, unmatched traffic) or "unshaped" (4e51:2), and
 * shown with the match its u32 filters hold (read back to prefixes, protocol and port).
 */
import { treeDevices, type TreeDevice } from '../plan/current-spec.js';
import type { Filter, Link, Observed } from '../domain/link.js';
import type { Direction } from '../domain/spec.js';
import { hasOurRoot } from '../plan/apply-plan.js';
import {
  BULK_CLASS_ID,
  BYPASS_CLASS_ID,
  CLASS_ID,
  DEFAULT_CHILD_ID,
  DEFAULT_CHILD_MINOR,
  HOOK_BYPASS_FLOWID,
  ROOT_HANDLE,
  SMALL_CLASS_ID,
  ifbName,
  isOurIfb,
  isUserClass,
} from '../plan/names.js';
import type { HtbClass } from '../plan/parse-class.js';
import type { QdiscStats } from '../plan/parse-tc.js';
import { selectTargets } from '../plan/select.js';
import { matchText, readU32Match, type Side } from '../plan/u32.js';
import { formatBytes, formatRate, formatTable } from './table.js';

export interface StatusCounters {
  bytes: number;
  packets: number;
  drops: number;
  overlimits: number;
  /** bytes waiting in the leaf queue */
  backlog: number;
}

export interface DirectionStatus {
  direction: Direction;
  shaped: boolean;
  /** the device holding the HTB tree: the interface (egress) or its ifb (ingress) */
  shapedOn?: string;
  rateBps?: number;
  ceilBps?: number;
  burstBytes?: number;
  cburstBytes?: number;
  leaf?: { kind: string; handle: string; limitBytes?: number };
  counters?: StatusCounters;
  /** the child classes (netqos.io/<dir>-classes): the annotation's order, then default, then unshaped */
  classes?: ClassStatus[];
  /** prefixes that go around the limit (netqos.io/unshaped-subnets), read from our filters */
  unshaped?: string[];
}

export interface ClassStatus {
  classid: string;
  /** "#1", "#2", ... (the place in the annotation: the kernel keeps no names), "default" or "unshaped" */
  name: string;
  /** the place in netqos.io/<dir>-classes, from 1 (named classes only) */
  position?: number;
  /** what its filters match, one entry per rule ("198.18.0.0/24 tcp port 5432"); "?" for a rule netqos did not write */
  match: string[];
  rateBps: number;
  ceilBps: number;
  prio?: number;
  counters?: StatusCounters;
}

export interface InterfaceStatus {
  name: string;
  index: number;
  kind: Link['kind'];
  egress: DirectionStatus;
  ingress: DirectionStatus;
}

export interface StatusReport {
  target: string;
  interfaces: InterfaceStatus[];
}

export type Tree = TreeDevice;

/**
 * The interfaces status reports on: those netqos would shape, plus any that carries a tree of
 * ours (an operator may have named another kind with --interfaces).
 */
export function statusInterfaces(o: Observed): Link[] {
  const shapeable = new Set(selectTargets(o.links).map((l) => l.name));
  return o.links.filter(
    (l) =>
      l.kind !== 'loopback' &&
      !isOurIfb(l.name) &&
      (shapeable.has(l.name) || hasOurRoot(o, l.name) || o.links.some((x) => x.name === ifbName(l.index))),
  );
}

/** The HTB trees of ours in the namespace: the devices whose counters and classes to read. */
export const shapedTrees = (o: Observed): Tree[] => treeDevices(o);

export interface StatusInput {
  target: string;
  observed: Observed;
  /** `tc -s qdisc show` of each tree device */
  stats: ReadonlyMap<string, readonly QdiscStats[]>;
  /** HTB classes of each tree device */
  classes: ReadonlyMap<string, readonly HtbClass[]>;
}

export function buildStatus(input: StatusInput): StatusReport {
  const trees = shapedTrees(input.observed);
  const direction = (iface: Link, dir: Direction): DirectionStatus => {
    const tree = trees.find((t) => t.iface.name === iface.name && t.direction === dir);
    if (!tree) return { direction: dir, shaped: false };
    const qdiscs = input.stats.get(tree.dev) ?? [];
    const root = qdiscs.find((q) => q.parent === 'root' && q.handle === ROOT_HANDLE);
    const htbClasses = input.classes.get(tree.dev) ?? [];
    // user classes (4e51:11.., or unshaped 4e51:2 beside them) get rows; without any, the bulk
    // and small-packet children are the tree's own leaves
    const userClasses = htbClasses.some((c) => isUserClass(c.classid) && c.classid !== BYPASS_CLASS_ID);
    const leaves = userClasses ? [] : qdiscs.filter((q) => q.parent === BULK_CLASS_ID || q.parent === SMALL_CLASS_ID);
    const leaf = leaves.find((q) => q.parent === BULK_CLASS_ID);
    const sum = (k: 'drops' | 'backlog'): number | undefined =>
      leaves.some((q) => q[k] !== undefined) ? leaves.reduce((a, q) => a + (q[k] ?? 0), 0) : undefined;
    const cls = htbClasses.find((c) => c.classid === CLASS_ID);
    const s: DirectionStatus = { direction: dir, shaped: true, shapedOn: tree.dev };
    if (cls) {
      s.rateBps = cls.rateBytes * 8;
      s.ceilBps = cls.ceilBytes * 8;
      s.burstBytes = cls.burstBytes;
      s.cburstBytes = cls.cburstBytes;
    }
    if (leaf) {
      const limit = leaf.options.limit;
      s.leaf = { kind: leaf.kind, handle: leaf.handle, ...(leaf.kind === 'bfifo' && typeof limit === 'number' ? { limitBytes: limit } : {}) };
    }
    if (root?.bytes !== undefined) {
      s.counters = {
        bytes: root.bytes,
        packets: root.packets ?? 0,
        drops: sum('drops') ?? root.drops ?? 0,
        overlimits: root.overlimits ?? 0,
        backlog: sum('backlog') ?? root.backlog ?? 0,
      };
    }
    const children = htbClasses.filter((c) => (userClasses && c.parent === CLASS_ID) || c.classid === BYPASS_CLASS_ID);
    if (children.length > 0) {
      const rootFilters = (input.observed.filters ?? []).filter((f) => f.dev === tree.dev && f.parent === ROOT_HANDLE);
      const side: Side = dir === 'egress' ? 'dst' : 'src';
      s.classes = children.map((c) => classStatus(c, rootFilters, side)).sort((a, b) => order(a) - order(b));
    }
    const hookBypass = dir === 'ingress' ? (input.observed.filters ?? []).filter((f) => f.dev === iface.name && f.flowid === HOOK_BYPASS_FLOWID) : [];
    const unshaped = [...(s.classes?.find((c) => c.classid === BYPASS_CLASS_ID)?.match ?? []), ...matchesOf(hookBypass, 'src')];
    if (unshaped.length > 0) s.unshaped = unshaped;
    return s;
  };
  return {
    target: input.target,
    interfaces: statusInterfaces(input.observed).map((iface) => ({
      name: iface.name,
      index: iface.index,
      kind: iface.kind,
      egress: direction(iface, 'egress'),
      ingress: direction(iface, 'ingress'),
    })),
  };
}

const minor = (classid: string): number => parseInt(classid.split(':')[1] ?? '0', 16);

/** named classes first (in the annotation's order), then default, then unshaped */
const order = (c: ClassStatus): number => (c.position ?? (c.classid === DEFAULT_CHILD_ID ? 1000 : 1001));

function matchesOf(filters: readonly Filter[], side: Side): string[] {
  return [...filters]
    .sort((a, b) => a.prio - b.prio)
    .map((f) => {
      const m = readU32Match(f.keys ?? [], f.protocol, side);
      return m ? matchText(m) : '?';
    });
}

function classStatus(c: HtbClass, rootFilters: readonly Filter[], side: Side): ClassStatus {
  const m = minor(c.classid);
  const position = m > DEFAULT_CHILD_MINOR ? m - DEFAULT_CHILD_MINOR : undefined;
  const name = c.classid === DEFAULT_CHILD_ID ? 'default' : c.classid === BYPASS_CLASS_ID ? 'unshaped' : `#${position ?? c.classid}`;
  const k = c.counters;
  return {
    classid: c.classid,
    name,
    ...(position !== undefined ? { position } : {}),
    match: matchesOf(rootFilters.filter((f) => f.flowid === c.classid), side),
    rateBps: c.rateBytes * 8,
    ceilBps: c.ceilBytes * 8,
    ...(c.prio !== undefined ? { prio: c.prio } : {}),
    ...(k ? { counters: { bytes: k.bytes, packets: k.packets, drops: k.drops, overlimits: k.overlimits, backlog: k.backlog } } : {}),
  };
}

const HEADER = ['INTERFACE', 'DIRECTION', 'SHAPED ON', 'RATE', 'BURST', 'LEAF', 'BYTES', 'PACKETS', 'DROPS', 'OVERLIMITS', 'BACKLOG'];
const ALIGN = ['left', 'left', 'left', 'right', 'right', 'left', 'right', 'right', 'right', 'right', 'right'] as const;

export function leafText(leaf: DirectionStatus['leaf']): string {
  if (!leaf) return '-';
  if (leaf.limitBytes !== undefined) return `${leaf.kind} ${formatBytes(leaf.limitBytes)}`;
  // tc -json prints no limit for a tbf; ours only cuts GSO skbs into frames (params.ts)
  return leaf.kind === 'tbf' ? 'tbf (segments)' : leaf.kind;
}

function rateText(s: DirectionStatus): string {
  if (s.rateBps === undefined) return '?';
  const rate = formatRate(s.rateBps);
  return s.ceilBps !== undefined && s.ceilBps !== s.rateBps ? `${rate} (ceil ${formatRate(s.ceilBps)})` : rate;
}

function row(iface: InterfaceStatus, s: DirectionStatus): string[] {
  if (!s.shaped) return [iface.name, s.direction, 'unshaped'];
  const c = s.counters;
  const n = (v: number | undefined): string => (v === undefined ? '-' : String(v));
  return [
    iface.name,
    s.direction,
    s.shapedOn ?? '-',
    rateText(s),
    s.burstBytes !== undefined ? formatBytes(s.burstBytes) : '?',
    s.classes ? 'per class' : leafText(s.leaf),
    n(c?.bytes),
    n(c?.packets),
    n(c?.drops),
    n(c?.overlimits),
    c ? formatBytes(c.backlog) : '-',
  ];
}

const CLASS_HEADER = ['INTERFACE', 'DIRECTION', 'CLASS', 'NAME', 'MATCH', 'RATE', 'CEIL', 'PRIO', 'BYTES', 'PACKETS', 'DROPS', 'OVERLIMITS', 'BACKLOG'];
const CLASS_ALIGN = ['left', 'left', 'left', 'left', 'left', 'right', 'right', 'right', 'right', 'right', 'right', 'right', 'right'] as const;

function classRows(iface: InterfaceStatus, s: DirectionStatus): string[][] {
  const rows = (s.classes ?? []).map((c) => {
    const k = c.counters;
    const n = (v: number | undefined): string => (v === undefined ? '-' : String(v));
    const match = c.classid === DEFAULT_CHILD_ID ? 'anything else' : c.match.join(', ') || '-';
    return [
      iface.name, s.direction, c.classid, c.name, match, formatRate(c.rateBps), formatRate(c.ceilBps), n(c.prio),
      n(k?.bytes), n(k?.packets), n(k?.drops), n(k?.overlimits), k ? formatBytes(k.backlog) : '-',
    ];
  });
  // ingress unshaped subnets never reach the ifb: no class, no counters, but say where they go
  if (s.direction === 'ingress' && s.unshaped && !s.classes?.some((c) => c.classid === BYPASS_CLASS_ID)) {
    rows.push([iface.name, s.direction, '-', 'unshaped', s.unshaped.join(', '), '-', '-', '-', '-', '-', '-', '-', '-']);
  }
  return rows;
}

export function renderStatusTable(r: StatusReport): string {
  if (r.interfaces.length === 0) return `${r.target}: no interface netqos could shape (only loopback or unsupported kinds)\n`;
  const rows = r.interfaces.flatMap((i) => [row(i, i.egress), row(i, i.ingress)]);
  const classes = r.interfaces.flatMap((i) => [...classRows(i, i.egress), ...classRows(i, i.ingress)]);
  const main = `${r.target}\n${formatTable(HEADER, rows, ALIGN)}`;
  return classes.length === 0 ? main : `${main}\n${formatTable(CLASS_HEADER, classes, CLASS_ALIGN)}`;
}

export const renderStatusJson = (r: StatusReport): string => `${JSON.stringify(r, null, 2)}\n`;
