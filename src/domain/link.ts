/**
 * What the kernel told us about a network namespace: its links and qdiscs.
 * Produced by src/kernel/discover.ts from `ip -json -details link show` and `tc -json qdisc show`,
 * consumed by the pure planner. Pure data.
 */
export type LinkKind =
  | 'veth'
  | 'macvlan'
  | 'ipvlan'
  | 'vf' // an SR-IOV virtual function (PCI device with a physfn)
  | 'physical' // a device with a parent bus and no link kind
  | 'ifb'
  | 'loopback'
  | 'other';

export interface Link {
  name: string;
  index: number;
  kind: LinkKind;
  mtu: number;
  up: boolean;
  /** largest skb the stack hands this device (GSO super-packet), bytes */
  gsoMaxSize: number;
  /** largest GSO the device supports; its default gso_max_size is min(65536, this) */
  tsoMaxSize: number;
  /** parent bus device (PCI address) when the kernel reports one */
  parentDev?: string;
  /** the kind of the device's root qdisc, as ip prints it (noqueue, htb, mq, ...) */
  rootQdisc?: string;
}

export interface Qdisc {
  dev: string;
  kind: string; // htb, bfifo, ingress, clsact, noqueue, ...
  handle: string; // "4e51:" as tc prints it
  parent: string; // "root", "ffff:fff1", "4e51:1", ...
  /** the qdisc's options as tc -json prints them (htb: {"default": "0x1", ...}) */
  options?: Record<string, unknown>;
}

/** A tc u32 rule on a device's ingress hook or on our HTB root (the fields planning needs). */
export interface Filter {
  dev: string;
  parent: string;
  prio: number;
  handle: string;
  kind: string;
  /** mirred redirect target, when the filter has one */
  redirectTo?: string;
  /** "ip", "ipv6", "all" */
  protocol?: string;
  flowid?: string;
  /** u32 keys as value/mask@off (8 hex digits each), in the kernel's order */
  keys?: string[];
}

/**
 * Where a link's other end is and what it is called by its owner, from the same `ip -json
 * -details link show` (a veth's peer; netqos's host-side alias). Kept apart from Link so the
 * planner of the container's own namespace sees exactly what it always did.
 */
export interface LinkPeer {
  name: string;
  index: number;
  /** ifindex of the other end (a veth's peer, a macvlan's parent), in peerNetnsId's namespace */
  peerIndex?: number;
  /** the namespace of the other end, as this namespace numbers it; absent: the same namespace */
  peerNetnsId?: number;
  /** the link's alias (`ip link set dev X alias ...`) */
  alias?: string;
}

export interface Observed {
  links: Link[];
  qdiscs: Qdisc[];
  /**
   * ingress-hook filters, read whenever a device has an ingress or clsact hook, and the
   * filters on our HTB roots (parent 4e51:)
   */
  filters?: Filter[];
  /** the other ends of the links (veth peers), read with the links */
  peers?: LinkPeer[];
  /**
   * qdiscs and filters were not read: ip showed no ifb of ours and no HTB root (discoverForSetup).
   * Ingress hooks someone else put there are unknown: the plan adds its own and fails if one exists.
   */
  fresh?: true;
}

/** What the kernel can do, found once by the probe (src/kernel/probe.ts). */
export interface Capabilities {
  fqCodel: boolean;
  clsact: boolean;
}

export const MINIMAL_CAPS: Capabilities = { fqCodel: false, clsact: false };
