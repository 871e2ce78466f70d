/**
 * What a container asked for, after parsing and validation: the input of the planner.
 * Rates and bursts are in bits (per second) because that is how the annotations speak;
 * the planner converts to the bytes tc counts.
 */
export type Direction = 'ingress' | 'egress';
export const DIRECTIONS: readonly Direction[] = ['ingress', 'egress'];

export interface DirectionLimit {
  /** layer-2 rate in bit/s, 1e3 .. 1e15 */
  rateBps: number;
  /** user-chosen burst in bits (netqos.io/<dir>-burst); undefined = derived by the planner */
  burstBits?: number;
}

export interface QosSpec {
  ingress?: DirectionLimit;
  egress?: DirectionLimit;
  /** how long a leaf queue may hold packets, in microseconds (netqos.io/queue-latency) */
  queueLatencyUs?: number;
  /** only these interfaces (netqos.io/interfaces); undefined = every shapeable interface */
  interfaces?: string[];
}
