/**
 * `netqos gc`: our ifbs on the node whose container is gone. Pure.
 *
 * An ifb is ours when its name is nqh + 12 hex, its kind ifb, and its alias ours (host-names.ts);
 * nothing else is ever a candidate. It is an orphan when the host veth its alias names no longer
 * exists (the container's namespace went, and the veth pair with it), or when that veth no
 * longer redirects to it (shaped again under another identity, or its egress limit dropped by
 * a run that failed half-way). The kernel front end confirms a candidate with a second look
 * after a grace period, so an apply that has created the ifb but not yet its redirect is spared.
 */
import type { Observed } from '../domain/link.js';
import { livePeer, ourHostIfbs, redirectTargets } from './host-side.js';
import { emptyPlan, type Plan } from './ops.js';

export interface Orphan {
  ifb: string;
  ifindex: number;
  identity: string;
  containerIf: string;
  reason: string;
}

export function findOrphans(host: Observed): Orphan[] {
  const out: Orphan[] = [];
  for (const { link, owner } of ourHostIfbs(host)) {
    const peer = livePeer(host, owner);
    let reason: string | undefined;
    if (peer === undefined) reason = `its veth ${owner.peerName} (ifindex ${owner.peerIndex}) is gone`;
    else if (!redirectTargets(host, peer.name).includes(link.name)) reason = `nothing redirects to it (${peer.name} has no redirect of ours to it)`;
    if (reason !== undefined) out.push({ ifb: link.name, ifindex: link.index, identity: owner.identity, containerIf: owner.containerIf, reason });
  }
  return out;
}

/** the orphans seen twice, as the same device (same name and ifindex) */
export function confirmed(first: readonly Orphan[], second: readonly Orphan[]): Orphan[] {
  return second.filter((o) => first.some((f) => f.ifb === o.ifb && f.ifindex === o.ifindex));
}

export function planGc(orphans: readonly Orphan[]): Plan {
  const plan = emptyPlan();
  for (const o of orphans) plan.ipAfter.push({ object: 'link', verb: 'delete', name: o.ifb });
  return plan;
}
