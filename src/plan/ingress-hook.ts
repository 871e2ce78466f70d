/**
 * How ingress traffic of a device reaches its ifb: a u32 match-all (protocol all, so IPv6 and
 * ARP too) with a mirred redirect, on the device's ingress hook. The hook is an `ingress`
 * qdisc we create, or a `clsact` someone already put there (the two exclude each other, and a
 * clsact is not ours to replace).
 *
 * Our filter is added without a handle and found again by its priority. A fixed handle is not
 * safe: every u32 filter on a hook shares one set of hash tables, and the first one there owns
 * table 800:, so `filter replace ... handle 800::800` rewrote someone else's rule (measured).
 */
import { cidrOf } from '../domain/cidr.js';
import type { Filter, Observed } from '../domain/link.js';
import type { TcOp } from './ops.js';
import { CLSACT_INGRESS_PARENT, FILTER_PRIO, HOOK_BYPASS_FLOWID, HOOK_BYPASS_PRIO, INGRESS_PARENT, isOurIfb, ROOT_HANDLE } from './names.js';
import { u32Match } from './u32.js';
import { isHostIfbName } from './host-names.js';

export type HookKind = 'ingress' | 'clsact' | 'none';

export function hookOf(observed: Observed, dev: string): HookKind {
  const q = observed.qdiscs.find((x) => x.dev === dev && (x.kind === 'ingress' || x.kind === 'clsact'));
  return q ? (q.kind as HookKind) : 'none';
}

const parentOf = (hook: HookKind): string => (hook === 'clsact' ? CLSACT_INGRESS_PARENT : INGRESS_PARENT);

/**
 * tc prints a redirect whose device is gone as "*": such a filter of ours must still go. A host
 * peer's redirect goes to an nqh ifb (host-names.ts).
 */
export const isOurRedirect = (f: Filter): boolean =>
  f.prio === FILTER_PRIO && f.redirectTo !== undefined && (isOurIfb(f.redirectTo) || isHostIfbName(f.redirectTo) || f.redirectTo === '*');

const BYPASS_PRIOS: readonly number[] = [HOOK_BYPASS_PRIO[4], HOOK_BYPASS_PRIO[6]];
/** an unshaped-subnet filter of ours: its priority and our flowid, no action */
export const isOurBypass = (f: Filter): boolean =>
  BYPASS_PRIOS.includes(f.prio) && f.flowid === HOOK_BYPASS_FLOWID && f.redirectTo === undefined;

export const isOurFilter = (f: Filter): boolean => isOurRedirect(f) || isOurBypass(f);

// tc prints no parent for filters on a clsact hook: anything not on our HTB root (4e51:) is the hook's
const isHookParent = (parent: string): boolean => parent !== ROOT_HANDLE;
/** the filters on the device's ingress hook (observed.filters also holds those on our HTB roots) */
const hookFilters = (observed: Observed, dev: string): Filter[] =>
  (observed.filters ?? []).filter((f) => f.dev === dev && isHookParent(f.parent));

const oursOn = (observed: Observed, dev: string): Filter[] => hookFilters(observed, dev).filter(isOurRedirect);

export function redirectOps(observed: Observed, dev: string, ifb: string): TcOp[] {
  const hook = hookOf(observed, dev);
  const ours = oursOn(observed, dev);
  if (ours.length === 1 && ours[0]?.redirectTo === ifb) return []; // already in place
  const ops: TcOp[] = [];
  if (hook === 'none') ops.push({ object: 'qdisc', verb: 'add', dev, parent: 'ingress', handle: INGRESS_PARENT, kind: 'ingress' });
  if (ours.length > 0) ops.push({ object: 'filter', verb: 'delete', dev, parent: parentOf(hook), prio: FILTER_PRIO });
  ops.push({
    object: 'filter',
    verb: 'add',
    dev,
    parent: parentOf(hook),
    prio: FILTER_PRIO,
    kind: 'u32',
    options: ['match', 'u32', '0', '0', 'action', 'mirred', 'egress', 'redirect', 'dev', ifb],
  });
  return ops;
}

/**
 * Removes our redirect. An ingress qdisc whose filters are all ours goes entirely; otherwise
 * (someone else's filters, or a clsact) only our priority is deleted.
 */
export function unredirectOps(observed: Observed, dev: string): TcOp[] {
  const hook = hookOf(observed, dev);
  if (hook === 'none') return [];
  const filters = hookFilters(observed, dev);
  const ours = filters.filter(isOurFilter);
  if (ours.length === 0) return [];
  if (hook === 'ingress' && ours.length === filters.length) {
    return [{ object: 'qdisc', verb: 'delete', dev, parent: 'ingress' }];
  }
  return deletePrios(ours, dev, parentOf(hook));
}

function deletePrios(filters: readonly Filter[], dev: string, parent: string): TcOp[] {
  const prios = [...new Set(filters.map((f) => f.prio))].sort((a, b) => a - b);
  return prios.map((prio) => {
    const protocol = filters.find((f) => f.prio === prio)?.protocol;
    const p = protocol === 'ip' || protocol === 'ipv6' ? { protocol } : {};
    return { object: 'filter', verb: 'delete', dev, parent, prio, ...p } as TcOp;
  });
}

/**
 * Unshaped subnets on ingress: a u32 filter per prefix before our redirect, matching the
 * source, with no action: a match ends classification and the packet is delivered without
 * reaching the ifb. Runs after redirectOps (the hook exists then). In place: nothing.
 */
export function bypassOps(observed: Observed, dev: string, unshaped: readonly string[]): TcOp[] {
  const hook = hookOf(observed, dev);
  const parent = parentOf(hook === 'none' ? 'ingress' : hook);
  const have = hookFilters(observed, dev).filter(isOurBypass);
  const ops: TcOp[] = [];
  for (const family of [4, 6] as const) {
    const prio = HOOK_BYPASS_PRIO[family];
    const rules = unshaped.map(cidrOf).filter((c) => c.family === family).map((c) => u32Match(c, 'src'));
    const present = have.filter((f) => f.prio === prio);
    const want = rules.map((r) => r.keys.join(',')).sort();
    const got = present.map((f) => (f.keys ?? []).join(',')).sort();
    if (want.length === got.length && want.every((k, i) => k === got[i])) continue;
    if (present.length > 0) ops.push(...deletePrios(present, dev, parent));
    const protocol = family === 4 ? 'ip' : 'ipv6';
    for (const r of rules) {
      ops.push({ object: 'filter', verb: 'add', dev, parent, protocol, prio, kind: 'u32', options: [...r.words, 'flowid', HOOK_BYPASS_FLOWID] });
    }
  }
  return ops;
}
