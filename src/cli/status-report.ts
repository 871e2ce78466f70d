/**
 * What `netqos status` shows, built from what the kernel reported, and rendered as a table or
 * JSON. Pure. Egress lives on the device itself, ingress on its ifb nqi<ifindex>; on either,
 * the configured rate comes from our HTB class (4e51:1), bytes / packets / overlimits from our
 * HTB root (4e51:) and drops / backlog from the leaf queue under the class, where they happen.
 */
import type { Link, Observed } from '../domain/link.js';
import type { Direction } from '../domain/spec.js';
import { hasOurRoot } from '../plan/apply-plan.js';
import { CLASS_ID, ROOT_HANDLE, ifbName, isOurIfb } from '../plan/names.js';
import type { HtbClass } from '../plan/parse-class.js';
import type { QdiscStats } from '../plan/parse-tc.js';
import { selectTargets } from '../plan/select.js';
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

export interface Tree {
  iface: Link;
  direction: Direction;
  dev: string;
}

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
export function shapedTrees(o: Observed): Tree[] {
  const trees: Tree[] = [];
  for (const iface of statusInterfaces(o)) {
    if (hasOurRoot(o, iface.name)) trees.push({ iface, direction: 'egress', dev: iface.name });
    const ifb = ifbName(iface.index);
    if (o.links.some((l) => l.name === ifb) && hasOurRoot(o, ifb)) trees.push({ iface, direction: 'ingress', dev: ifb });
  }
  return trees;
}

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
    const leaf = qdiscs.find((q) => q.parent === CLASS_ID);
    const cls = (input.classes.get(tree.dev) ?? []).find((c) => c.classid === CLASS_ID);
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
        drops: leaf?.drops ?? root.drops ?? 0,
        overlimits: root.overlimits ?? 0,
        backlog: leaf?.backlog ?? root.backlog ?? 0,
      };
    }
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

const HEADER = ['INTERFACE', 'DIRECTION', 'SHAPED ON', 'RATE', 'BURST', 'LEAF', 'BYTES', 'PACKETS', 'DROPS', 'OVERLIMITS', 'BACKLOG'];
const ALIGN = ['left', 'left', 'left', 'right', 'right', 'left', 'right', 'right', 'right', 'right', 'right'] as const;

export function leafText(leaf: DirectionStatus['leaf']): string {
  if (!leaf) return '-';
  return leaf.limitBytes !== undefined ? `${leaf.kind} ${formatBytes(leaf.limitBytes)}` : leaf.kind;
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
    leafText(s.leaf),
    n(c?.bytes),
    n(c?.packets),
    n(c?.drops),
    n(c?.overlimits),
    c ? formatBytes(c.backlog) : '-',
  ];
}

export function renderStatusTable(r: StatusReport): string {
  if (r.interfaces.length === 0) return `${r.target}: no interface netqos could shape (only loopback or unsupported kinds)\n`;
  const rows = r.interfaces.flatMap((i) => [row(i, i.egress), row(i, i.ingress)]);
  return `${r.target}\n${formatTable(HEADER, rows, ALIGN)}`;
}

export const renderStatusJson = (r: StatusReport): string => `${JSON.stringify(r, null, 2)}\n`;
