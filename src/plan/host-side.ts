/**
 * vethShaping "host": a container's veth is shaped on its peer in the node's namespace, where
 * a privileged container cannot reach it (seed 002; the CNI bandwidth plugin does the same).
 * Pure: QosSpec + what the container's and the node's namespaces hold -> two plans.
 *
 * - container egress = what arrives on the host peer: its ingress hook redirects (u32 + mirred,
 *   ingress-hook.ts) to an ifb in the node's namespace named from the container's identity
 *   (host-names.ts), and the HTB tree lives on that ifb.
 * - container ingress = what the host peer sends: the HTB tree is the host peer's root.
 * - other devices (macvlan, ipvlan, VFs) are shaped in the container's namespace as always
 *   (planApply), and whatever netqos had put on a host-shaped veth inside the container (the
 *   config changed) is removed there.
 *
 * Nothing on the node is touched that is not the container's verified host peer or an nqh ifb
 * whose alias names this identity; a host peer with someone else's root qdisc is refused.
 */
import { NetqosError } from '../domain/errors.js';
import type { Capabilities, Link, Observed } from '../domain/link.js';
import type { DirectionLimit, QosSpec } from '../domain/spec.js';
import { existing, hasOurRoot, planApply } from './apply-plan.js';
import { htbTree } from './htb-tree.js';
import { formatHostAlias, hostIfbName, isHostIfbName, parseHostAlias, type HostAlias } from './host-names.js';
import { findHostPeer, peerOf } from './host-peer.js';
import { isOurFilter, redirectOps, unredirectOps } from './ingress-hook.js';
import { ifbName } from './names.js';
import { emptyPlan, type IpOp, type Plan, type TcOp } from './ops.js';
import { DEFAULT_QUEUE_LATENCY_US, LEGACY_GSO_MAX } from './params.js';

/**
 * The leaf of a node-side tree holds at least two 64 KiB GSO super-packets (plus a frame), not
 * one: what reaches it is the container's uncapped GSO output, or GRO'd traffic the node
 * forwards. Measured at 60M into the container through a forwarding node, one TCP stream, 5 s,
 * 2-core VM under load: a one-skb bfifo (67 050 B) -1.2 to -6.4 % (down to -12.9 % once), a
 * 150 KB one -0.1 and -0.2 %. The cost is queueing delay when the queue is full: 132 586 B is
 * 10.6 ms at 100M, 106 ms at 10M (a 5 ms latency leaf is larger than that from 212M up).
 */
export const NODE_LEAF_MIN_SKB = 2 * LEGACY_GSO_MAX;
import { planRemove } from './remove-plan.js';
import { selectTargets } from './select.js';

export interface HostApplyInput {
  identity: string;
  spec: QosSpec;
  container: Observed;
  host: Observed;
  caps: Capabilities;
  defaultLatencyUs?: number;
}

export interface HostPlans {
  /** operations in the container's namespace (non-veth devices; cleanup of container-side veth shaping) */
  container: Plan;
  /** operations in the node's namespace */
  host: Plan;
}

/** a veth shaped on the node: the container's device and its verified host peer */
export interface HostPair {
  dev: Link;
  peer: Link;
}

/** root qdiscs a host veth may have for us to put ours there: none, the veth default, or ours */
const FREE_ROOTS = new Set(['noqueue', 'noop']);

export function planHostApply(input: HostApplyInput): HostPlans {
  const { spec, container, host } = input;
  if (spec.unshapedSubnets?.length || spec.perInterface || spec.egress?.classes?.length || spec.ingress?.classes?.length) {
    throw new NetqosError(
      'UNSUPPORTED',
      'vethShaping "host" shapes the direction totals only: netqos.io classes, unshaped subnets and per-interface limits are planned in the container; remove them or set vethShaping to "container"',
    );
  }
  const targets = selectTargets(container.links, spec.interfaces);
  const veths = targets.filter((l) => l.kind === 'veth');
  const pairs = veths.map((dev) => ({ dev, peer: findHostPeer(dev, container, host) }));
  const others = targets.filter((l) => l.kind !== 'veth').map((l) => l.name);
  const inContainer = planApply({ spec: { ...spec, interfaces: others }, observed: container, caps: input.caps, defaultLatencyUs: input.defaultLatencyUs });
  const cleanup = planRemove(onlyDevices(container, pairs.flatMap((p) => [p.dev.name, ifbName(p.dev.index)])));
  const latencyUs = spec.queueLatencyUs ?? input.defaultLatencyUs ?? DEFAULT_QUEUE_LATENCY_US;
  const hostPlan = emptyPlan();
  for (const pair of pairs) {
    planHostEgress(input, pair, latencyUs, hostPlan);
    planHostIngress(input, pair, latencyUs, hostPlan);
  }
  return { container: merge(inContainer, cleanup), host: dedupe(hostPlan) };
}

/** container egress: host peer ingress -> mirred -> the identity's ifb on the node -> HTB */
function planHostEgress(input: HostApplyInput, { dev, peer }: HostPair, latencyUs: number, plan: Plan): void {
  const { host, identity } = input;
  const want = input.spec.egress;
  const ifb = hostIfbName(identity, dev.name);
  const existing = host.links.find((l) => l.name === ifb);
  const alias: HostAlias = { identity, containerIf: dev.name, peerIndex: peer.index, peerName: peer.name };
  if (existing) {
    const owner = parseHostAlias(peerOf(host, ifb)?.alias);
    if (existing.kind !== 'ifb' || owner === undefined || owner.identity !== identity || owner.containerIf !== dev.name) {
      throw new NetqosError(
        'KERNEL',
        `the node already has a device ${ifb} that is not the ifb of ${identity}/${dev.name} (alias ${JSON.stringify(peerOf(host, ifb)?.alias ?? '')}); a name collision or a device someone else made: delete it or give the container another identity`,
      );
    }
  }
  // ifbs of ours the peer redirects to now but that are not this one (another identity shaped this veth before)
  const stale = redirectTargets(host, peer.name).filter((n) => n !== ifb && ownedIfbFor(host, n, peer));
  if (!want) {
    if (existing || stale.length > 0 || redirectTargets(host, peer.name).length > 0) plan.tc.push(...unredirectOps(host, peer.name));
    for (const n of [...(existing ? [ifb] : []), ...stale]) plan.ipAfter.push({ object: 'link', verb: 'delete', name: n });
    return;
  }
  if (!existing) {
    plan.ip.push({ object: 'link', verb: 'add', name: ifb, kind: 'ifb', mtu: peer.mtu });
    plan.ip.push({ object: 'link', verb: 'alias', name: ifb, alias: formatHostAlias(alias) });
  } else if (peerOf(host, ifb)?.alias !== formatHostAlias(alias)) {
    plan.ip.push({ object: 'link', verb: 'alias', name: ifb, alias: formatHostAlias(alias) });
  }
  if (existing && !existing.up) plan.ip.push({ object: 'link', verb: 'up', name: ifb });
  // what reaches the ifb is what the container sent: GSO super-packets up to 64 KiB
  const tree = nodeTree(input, ifb, existing !== undefined, want, peer.mtu, latencyUs);
  plan.tc.push(...tree.ops, ...redirectOps(host, peer.name, ifb));
  for (const n of stale) plan.ipAfter.push({ object: 'link', verb: 'delete', name: n });
  plan.shaped.push({ dev: dev.name, direction: 'egress', ...tree.shaped, onNode: true });
}

/** an HTB tree on the node (the ifb, or the host peer): its leaf takes the container's GSO packets */
function nodeTree(input: HostApplyInput, dev: string, mayExist: boolean, want: DirectionLimit, mtu: number, latencyUs: number) {
  return htbTree({
    dev,
    // what the tree holds now (its root, leaves and root filters), as for a container's tree
    ...(mayExist ? existing(input.host, dev) : {}),
    rateBps: want.rateBps,
    userBurstBits: want.burstBits,
    mtu,
    maxSkb: NODE_LEAF_MIN_SKB,
    latencyUs,
    caps: input.caps,
  });
}

/** container ingress: the HTB tree is the host peer's root */
function planHostIngress(input: HostApplyInput, { dev, peer }: HostPair, latencyUs: number, plan: Plan): void {
  const { host } = input;
  const want = input.spec.ingress;
  const ours = hasOurRoot(host, peer.name);
  if (!want) {
    if (ours) plan.tc.push({ object: 'qdisc', verb: 'delete', dev: peer.name, parent: 'root' });
    return;
  }
  const root = host.qdiscs.find((q) => q.dev === peer.name && q.parent === 'root');
  if (!ours && root !== undefined && !FREE_ROOTS.has(root.kind)) {
    throw new NetqosError(
      'KERNEL',
      `${dev.name}'s peer ${peer.name} on the node already has a root qdisc ${root.kind} ${root.handle} that is not netqos's (another shaper, such as the CNI bandwidth plugin?); remove it, or set vethShaping to "container"`,
    );
  }
  const tree = nodeTree(input, peer.name, true, want, peer.mtu, latencyUs);
  plan.tc.push(...tree.ops);
  plan.shaped.push({ dev: dev.name, direction: 'ingress', ...tree.shaped, onNode: true });
}

export interface HostRemoveInput {
  /** whose ifbs to remove; undefined: only what the container's veths lead to */
  identity?: string;
  /** the container's namespace, when it still exists */
  container?: Observed;
  host: Observed;
}

/**
 * Everything of ours on the node for this container: on each verified host peer our root and our
 * redirect, the ifbs the redirect led to, and every ifb whose alias names the identity (also
 * when the container's namespace, and with it the veth, is gone). Nothing else.
 */
export function planHostRemove(input: HostRemoveInput): Plan {
  const { host } = input;
  const plan = emptyPlan();
  const peers: Link[] = [];
  for (const dev of input.container?.links.filter((l) => l.kind === 'veth') ?? []) {
    try {
      peers.push(findHostPeer(dev, input.container!, host));
    } catch {
      // not a veth of the node: nothing of ours on the node for it
    }
  }
  const ifbs = new Set<string>();
  for (const peer of peers) {
    for (const n of redirectTargets(host, peer.name)) if (ownedIfbFor(host, n, peer)) ifbs.add(n);
    plan.tc.push(...unredirectOps(host, peer.name));
    if (hasOurRoot(host, peer.name)) plan.tc.push({ object: 'qdisc', verb: 'delete', dev: peer.name, parent: 'root' });
  }
  if (input.identity !== undefined) {
    for (const { link, owner } of ourHostIfbs(host)) {
      if (owner.identity !== input.identity) continue;
      ifbs.add(link.name);
      // the veth it served may still be there (the container still runs): its redirect goes too
      const peer = livePeer(host, owner);
      if (peer && redirectTargets(host, peer.name).includes(link.name)) plan.tc.push(...unredirectOps(host, peer.name));
    }
  }
  for (const n of [...ifbs].sort()) plan.ipAfter.push({ object: 'link', verb: 'delete', name: n });
  return dedupe(plan);
}

/** our ifbs on the node: nqh names, kind ifb, and an alias of ours (anything else is not ours) */
export function ourHostIfbs(host: Observed): { link: Link; owner: HostAlias }[] {
  const out: { link: Link; owner: HostAlias }[] = [];
  for (const link of host.links) {
    if (link.kind !== 'ifb' || !isHostIfbName(link.name)) continue;
    const owner = parseHostAlias(peerOf(host, link.name)?.alias);
    if (owner) out.push({ link, owner });
  }
  return out;
}

/** the host veth an alias names, when it still exists under that index and name */
export function livePeer(host: Observed, owner: HostAlias): Link | undefined {
  const l = host.links.find((x) => x.index === owner.peerIndex);
  return l && l.name === owner.peerName && l.kind === 'veth' ? l : undefined;
}

/** where our redirect filters on a device lead */
export const redirectTargets = (o: Observed, dev: string): string[] =>
  (o.filters ?? []).filter((f) => f.dev === dev && isOurFilter(f) && f.redirectTo !== undefined).map((f) => f.redirectTo as string);

/** an ifb of ours whose alias says it served this host peer */
function ownedIfbFor(host: Observed, name: string, peer: Link): boolean {
  const link = host.links.find((l) => l.name === name);
  const owner = parseHostAlias(peerOf(host, name)?.alias);
  return link?.kind === 'ifb' && isHostIfbName(name) && owner !== undefined && owner.peerIndex === peer.index && owner.peerName === peer.name;
}

function onlyDevices(o: Observed, devs: readonly string[]): Observed {
  const keep = new Set(devs);
  return {
    links: o.links.filter((l) => keep.has(l.name)),
    qdiscs: o.qdiscs.filter((q) => keep.has(q.dev)),
    filters: (o.filters ?? []).filter((f) => keep.has(f.dev)),
  };
}

function merge(a: Plan, b: Plan): Plan {
  return { ip: [...a.ip, ...b.ip], tc: [...a.tc, ...b.tc], ipAfter: [...a.ipAfter, ...b.ipAfter], shaped: [...a.shaped, ...b.shaped] };
}

/** the same operation twice (two ways of finding one object) runs once */
function dedupe(p: Plan): Plan {
  const once = <T extends IpOp | TcOp>(ops: T[]): T[] => {
    const seen = new Set<string>();
    return ops.filter((op) => {
      const k = JSON.stringify(op);
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
  };
  return { ip: once(p.ip), tc: once(p.tc), ipAfter: once(p.ipAfter), shaped: p.shaped };
}
