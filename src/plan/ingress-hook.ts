/**
 * How ingress traffic of a device reaches its ifb: a u32 match-all (protocol all, so IPv6 and
 * ARP too) with a mirred redirect, on the device's ingress hook. The hook is an `ingress`
 * qdisc we create, or a `clsact` someone already put there (the two exclude each other, and a
 * clsact is not ours to replace).
 */
import type { Filter, Observed } from '../domain/link.js';
import type { FilterOp, TcOp } from './ops.js';
import { CLSACT_INGRESS_PARENT, FILTER_HANDLE, FILTER_PRIO, INGRESS_PARENT, isOurIfb } from './names.js';

export type HookKind = 'ingress' | 'clsact' | 'none';

export function hookOf(observed: Observed, dev: string): HookKind {
  const q = observed.qdiscs.find((x) => x.dev === dev && (x.kind === 'ingress' || x.kind === 'clsact'));
  return q ? (q.kind as HookKind) : 'none';
}

const parentOf = (hook: HookKind): string => (hook === 'clsact' ? CLSACT_INGRESS_PARENT : INGRESS_PARENT);

export function redirectOps(observed: Observed, dev: string, ifb: string): TcOp[] {
  const hook = hookOf(observed, dev);
  const ops: TcOp[] = [];
  if (hook === 'none') ops.push({ object: 'qdisc', verb: 'replace', dev, parent: 'ingress', handle: INGRESS_PARENT, kind: 'ingress' });
  ops.push({
    object: 'filter',
    verb: 'replace',
    dev,
    parent: parentOf(hook),
    prio: FILTER_PRIO,
    handle: FILTER_HANDLE,
    kind: 'u32',
    options: ['match', 'u32', '0', '0', 'action', 'mirred', 'egress', 'redirect', 'dev', ifb],
  });
  return ops;
}

export const isOurFilter = (f: Filter): boolean =>
  f.prio === FILTER_PRIO && f.redirectTo !== undefined && isOurIfb(f.redirectTo);

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
  const del: FilterOp = { object: 'filter', verb: 'delete', dev, parent: parentOf(hook), prio: FILTER_PRIO };
  return [del];
}
