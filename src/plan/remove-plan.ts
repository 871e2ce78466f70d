/**
 * Everything netqos put in a namespace -> the operations that remove it, recognised by our
 * handles and names alone (no state). Needs observed.filters for devices with an ingress hook.
 */
import type { Observed } from '../domain/link.js';
import type { Plan } from './ops.js';
import { emptyPlan } from './ops.js';
import { hasOurRoot, restoreGso } from './apply-plan.js';
import { unredirectOps } from './ingress-hook.js';
import { isOurIfb } from './names.js';

export function planRemove(observed: Observed): Plan {
  const plan = emptyPlan();
  for (const link of observed.links) {
    if (isOurIfb(link.name) && link.kind === 'ifb') {
      // deleting the ifb takes its qdiscs with it
      plan.ipAfter.push({ object: 'link', verb: 'delete', name: link.name });
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
