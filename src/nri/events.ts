/**
 * NRI events and the subscription mask a plugin answers Configure with. The mask is derived
 * from the handlers the plugin implements, and never holds a bit the runtime's NRI version
 * rejects: containerd 1.7 to 2.1 (NRI <= 0.9) refuse the whole plugin for any bit outside 0x7ff
 * (measured on 2.1.9: mask 0x3fff -> "invalid plugin events: 0x3800"). Pure.
 */
export const Event = {
  RUN_POD_SANDBOX: 1,
  STOP_POD_SANDBOX: 2,
  REMOVE_POD_SANDBOX: 3,
} as const;
export type PodEvent = (typeof Event)[keyof typeof Event];

/** the handler of each event netqos knows, by the name a plugin implements it under */
export const POD_EVENT_HANDLERS = {
  runPodSandbox: Event.RUN_POD_SANDBOX,
  stopPodSandbox: Event.STOP_POD_SANDBOX,
  removePodSandbox: Event.REMOVE_POD_SANDBOX,
} as const;
export type PodEventHandlerName = keyof typeof POD_EVENT_HANDLERS;

/** the dedicated RPC of each event (NRI 0.12+); older runtimes send StateChange instead */
export const POD_EVENT_METHODS: Readonly<Record<string, PodEventHandlerName>> = {
  RunPodSandbox: 'runPodSandbox',
  StopPodSandbox: 'stopPodSandbox',
  RemovePodSandbox: 'removePodSandbox',
};

export const eventBit = (event: number): number => 1 << (event - 1);

/** ValidEvents of NRI up to 0.9 (events 1..11) and from 0.10 on (events 1..14) */
export const VALID_EVENTS_BEFORE_0_10 = 0x7ff;
export const VALID_EVENTS_SINCE_0_10 = 0x3fff;

/**
 * The events a runtime accepts, from the NRI version it states in Configure (NRI 0.12+).
 * Runtimes that state none are older than 0.12; the conservative mask fits all of them.
 */
export function validEvents(nriVersion: string): number {
  const m = /^v?(\d+)\.(\d+)/.exec(nriVersion);
  if (!m) return VALID_EVENTS_BEFORE_0_10;
  const [major, minor] = [Number(m[1]), Number(m[2])];
  return major > 0 || minor >= 10 ? VALID_EVENTS_SINCE_0_10 : VALID_EVENTS_BEFORE_0_10;
}

/** The mask for the handlers present in `handlers`, limited to what the runtime accepts. */
export function subscriptionMask(handlers: object, valid: number): number {
  let mask = 0;
  for (const [name, event] of Object.entries(POD_EVENT_HANDLERS)) {
    if (typeof (handlers as Record<string, unknown>)[name] === 'function') mask |= eventBit(event);
  }
  return mask & valid;
}
