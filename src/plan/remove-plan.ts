/**
 * Everything netqos put in a namespace -> the operations that remove it, recognised by our
 * handles and names alone (no state). Needs observed.filters for devices with an ingress hook.
 */
import type { Link, Observed } from '../domain/link.js';
import type { IpOp, Plan } from './ops.js';
import { emptyPlan } from './ops.js';
import { hasOurRoot, restoreGso } from './apply-plan.js';
import { unredirectOps } from './ingress-hook.js';
import { isOurIfb } from './names.js';

const isOurIfbLink = (link: Link): boolean => isOurIfb(link.name) && link.kind === 'ifb';

/** Deleting our ifbs (which takes their qdiscs with them): known from the links alone. */
export const ifbDeletes = (links: readonly Link[]): IpOp[] =>
  links.filter(isOurIfbLink).map((l) => ({ object: 'link', verb: 'delete', name: l.name }));

export function planRemove(observed: Observed): Plan {
  const plan = emptyPlan();
  for (const link of observed.links) {
    if (isOurIfbLink(link)) {
      plan.ipAfter.push(...ifbDeletes([link]));
      continue;
    }
    plan.tc.push(...unredirectOps(observed, link.name));
    if (hasOurRoot(observed, link.name)) {
      plan.tc.push({ object: 'qdisc', verb: 'delete', dev: link.name, parent: 'root' });
      plan.ipAfter.push(...restoreGso(link));
    }
  }
  return plan;
}

export const isEmptyPlan = (p: Plan): boolean => p.ip.length + p.tc.length + p.ipAfter.length === 0;
