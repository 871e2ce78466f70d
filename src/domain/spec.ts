/**
 * What a container asked for, after parsing and validation: the input of the planner.
 * Rates and bursts are in bits (per second) because that is how the annotations speak;
 * the planner converts to the bytes tc counts.
 */
export type Direction = 'ingress' | 'egress';
export const DIRECTIONS: readonly Direction[] = ['ingress', 'egress'];

/** Which packets a class takes: the peer's address (destination for egress, source for ingress). */
export interface ClassMatch {
  /** IPv4 and/or IPv6 prefixes, canonical text ("10.0.0.0/8", "fd00::/8") */
  cidrs: string[];
  protocol?: 'tcp' | 'udp' | 'icmp' | 'icmpv6' | 'sctp';
  /** the peer's port (destination port for egress, source port for ingress); needs tcp/udp/sctp */
  port?: number;
}

/** A child class under the direction's total (netqos.io/<dir>-classes). */
export interface TrafficClass {
  name: string;
  /** guaranteed rate, bit/s */
  rateBps: number;
  /** may borrow up to this, bit/s; undefined = rateBps (no borrowing) */
  ceilBps?: number;
  /** 0 = served first; undefined = default priority */
  priority?: number;
  match: ClassMatch;
}

export interface DirectionLimit {
  /** layer-2 rate in bit/s, 1e3 .. 1e15 */
  rateBps: number;
  /** user-chosen burst in bits (netqos.io/<dir>-burst); undefined = derived by the planner */
  burstBits?: number;
  /** child classes; unmatched traffic goes to a default class (netqos.io/<dir>-classes) */
  classes?: TrafficClass[];
}

/** The limits of one interface (the pod-wide ones, or a per-interface override). */
export interface InterfaceLimits {
  ingress?: DirectionLimit;
  egress?: DirectionLimit;
}

export interface QosSpec extends InterfaceLimits {
  /** how long a leaf queue may hold packets, in microseconds (netqos.io/queue-latency) */
  queueLatencyUs?: number;
  /** only these interfaces (netqos.io/interfaces); undefined = every shapeable interface */
  interfaces?: string[];
  /** traffic to/from these prefixes bypasses the limits (netqos.io/unshaped-subnets) */
  unshapedSubnets?: string[];
  /** per-interface overrides (netqos.io/<ifname>.<dir>-bandwidth ...), by interface name */
  perInterface?: Record<string, InterfaceLimits>;
}
