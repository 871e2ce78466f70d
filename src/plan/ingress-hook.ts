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
import type { Filter, Observed } from '../domain/link.js';
import type { TcOp } from './ops.js';
import { CLSACT_INGRESS_PARENT, FILTER_PRIO, INGRESS_PARENT, isOurIfb } from './names.js';
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
export const isOurFilter = (f: Filter): boolean =>
  f.prio === FILTER_PRIO && f.redirectTo !== undefined && (isOurIfb(f.redirectTo) || isHostIfbName(f.redirectTo) || f.redirectTo === '*');

const oursOn = (observed: Observed, dev: string): Filter[] =>
  (observed.filters ?? []).filter((f) => f.dev === dev && isOurFilter(f));

export function redirectOps(observed: Observed, dev: string, ifb: string): TcOp[] {
  const hook = hookOf(observed, dev);
  const ours = oursOn(observed, dev);
  if (ours.length === 1 && ours[0]?.redirectTo === ifb) return []; // already in place
  const ops: TcOp[] = [];
  if (hook === 'none') ops.push({ object: 'qdisc', verb: 'replace', dev, parent: 'ingress', handle: INGRESS_PARENT, kind: 'ingress' });
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
  const filters = (observed.filters ?? []).filter((f) => f.dev === dev);
  const ours = filters.filter(isOurFilter);
  if (ours.length === 0) return [];
  if (hook === 'ingress' && ours.length === filters.length) {
    return [{ object: 'qdisc', verb: 'delete', dev, parent: 'ingress' }];
  }
  return [{ object: 'filter', verb: 'delete', dev, parent: parentOf(hook), prio: FILTER_PRIO }];
}
