/**
 * The shaping in force on a namespace, read back from the kernel: per interface, the rate and
 * burst of our HTB class on the device (egress) and on its ifb (ingress), and the queue latency
 * from the leaf. What `netqos update` without the daemon merges a change into. Pure.
 *
 * The kernel keeps numbers, not intentions, so two things are inferred:
 * - burst: equal to the derived one (burstBytes of the rate) within tc's print rounding
 *   (sizes are printed to a whole Kb within 16 bytes, to a whole Mb within 1024 bytes) means
 *   "derived", and the new rate gets its own derived burst; anything else is a user's burst,
 *   kept in bits;
 * - queue latency: a bfifo leaf above its floor (params.ts leafFloorBytes) holds exactly
 *   rate x latency, so latency = limit / rate: the bulk class's, else the small-packet class's
 *   (sized for the whole rate too, with a floor of two frames; the bulk leaf of an ifb below
 *   524 Mbit/s is a segmenting tbf, whose limit tc -json does not print). Leaves at their floor
 *   (low rates) say nothing, and the default applies. Equal to the default within one byte of
 *   rate means "default".
 */
import type { Link, Observed } from '../domain/link.js';
import type { Direction, DirectionLimit, QosSpec } from '../domain/spec.js';
import { hasOurRoot } from './apply-plan.js';
import { BULK_CLASS_ID, CLASS_ID, ifbName, isOurIfb, SMALL_CLASS_ID } from './names.js';
import { burstBytes, frameBytes, LEGACY_GSO_MAX, leafFloorBytes } from './params.js';
import type { HtbClass } from './parse-class.js';
import type { QdiscStats } from './parse-tc.js';

/** one HTB tree of ours: the interface, the direction, the device the tree lives on */
export interface TreeDevice {
  iface: Link;
  direction: Direction;
  dev: string;
}

/** Every tree of ours in the namespace. */
export function treeDevices(o: Observed): TreeDevice[] {
  const out: TreeDevice[] = [];
  for (const iface of o.links) {
    if (iface.kind === 'loopback' || isOurIfb(iface.name)) continue;
    if (hasOurRoot(o, iface.name)) out.push({ iface, direction: 'egress', dev: iface.name });
    const ifb = ifbName(iface.index);
    if (o.links.some((l) => l.name === ifb) && hasOurRoot(o, ifb)) out.push({ iface, direction: 'ingress', dev: ifb });
  }
  return out;
}

export interface CurrentInput {
  observed: Observed;
  /** `tc class show` of each tree device */
  classes: ReadonlyMap<string, readonly HtbClass[]>;
  /** `tc qdisc show` (with options) of each tree device */
  qdiscs: ReadonlyMap<string, readonly QdiscStats[]>;
  /** the latency a leaf without one of its own was built with (the config's) */
  defaultLatencyUs: number;
}

/** tc's print rounding of a size (sprint_size), plus the kernel's time-tick quantization */
const sizeSlack = (bytes: number): number => (bytes >= 1024 * 1024 ? 1024 : 16) + 8;

/**
 * The spec in force per interface name (each with `interfaces: [name]`), for interfaces that
 * carry at least one tree of ours. A tree whose class cannot be found is skipped (the caller
 * sees the interface as unshaped in that direction).
 */
export function currentSpecs(input: CurrentInput): Map<string, QosSpec> {
  const out = new Map<string, QosSpec>();
  const latencies: number[] = [];
  for (const tree of treeDevices(input.observed)) {
    const cls = (input.classes.get(tree.dev) ?? []).find((c) => c.classid === CLASS_ID);
    if (!cls) continue;
    const rateBps = cls.rateBytes * 8;
    const limit: DirectionLimit = { rateBps };
    const derived = burstBytes(rateBps, tree.iface.mtu);
    if (Math.abs(cls.burstBytes - derived) > sizeSlack(derived)) limit.burstBits = cls.burstBytes * 8;
    const spec = out.get(tree.iface.name) ?? { interfaces: [tree.iface.name] };
    spec[tree.direction] = limit;
    out.set(tree.iface.name, spec);
    const leafOf = (parent: string) => (input.qdiscs.get(tree.dev) ?? []).find((q) => q.parent === parent);
    const maxSkb = tree.direction === 'egress' ? tree.iface.gsoMaxSize : LEGACY_GSO_MAX;
    const bulk = leafOf(BULK_CLASS_ID);
    const small = leafOf(SMALL_CLASS_ID);
    const us =
      (bulk ? leafLatencyUs(bulk, rateBps, leafFloorBytes(maxSkb, tree.iface.mtu)) : undefined) ??
      (small ? leafLatencyUs(small, rateBps, leafFloorBytes(frameBytes(tree.iface.mtu), tree.iface.mtu)) : undefined);
    if (us !== undefined) latencies.push(us);
  }
  // one latency per spec: the first leaf that tells it (egress trees come first)
  const latency = latencies[0];
  const oneByteUs = (rateBps: number): number => 8e6 / rateBps;
  if (latency !== undefined) {
    for (const spec of out.values()) {
      const rate = spec.egress?.rateBps ?? spec.ingress?.rateBps ?? 1e15;
      if (Math.abs(latency - input.defaultLatencyUs) > oneByteUs(rate) + 1) spec.queueLatencyUs = latency;
    }
  }
  return out;
}

/** the latency a leaf was sized for, when its size tells it (see the module comment) */
function leafLatencyUs(leaf: QdiscStats, rateBps: number, floorBytes: number): number | undefined {
  if (leaf.kind === 'bfifo') {
    const limit = leaf.options.limit;
    if (typeof limit !== 'number' || limit <= Math.ceil(floorBytes)) return undefined;
    return Math.round((limit * 8e6) / rateBps);
  }
  if (leaf.kind === 'fq_codel') {
    // tc -json prints fq_codel's target in microseconds
    const target = leaf.options.target;
    return typeof target === 'number' && target > 0 ? Math.round(target) : undefined;
  }
  return undefined;
}
