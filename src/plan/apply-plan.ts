/**
 * QosSpec + what the namespace holds now -> the operations that make it shaped as asked.
 * Idempotent by construction: applying the plan of an already-shaped namespace changes
 * nothing, and a new rate becomes a `class replace` (in place, flows keep going).
 */
import type { Capabilities, Link, Observed } from '../domain/link.js';
import type { Direction, QosSpec } from '../domain/spec.js';
import type { IpOp, Plan, TcOp } from './ops.js';
import { emptyPlan } from './ops.js';
import { htbTree } from './htb-tree.js';
import { redirectOps, unredirectOps } from './ingress-hook.js';
import { ifbName, ROOT_HANDLE } from './names.js';
import { DEFAULT_QUEUE_LATENCY_US, defaultGso, gsoCap, LEGACY_GSO_MAX } from './params.js';
import { selectTargets } from './select.js';

export interface ApplyInput {
  spec: QosSpec;
  observed: Observed;
  caps: Capabilities;
  /** the operator's default queue latency (config), used when the spec has none */
  defaultLatencyUs?: number;
}

export const hasOurRoot = (o: Observed, dev: string): boolean =>
  o.qdiscs.some((q) => q.dev === dev && q.parent === 'root' && q.kind === 'htb' && q.handle === ROOT_HANDLE);

/** Gives a device back the gso_max_size it had before we capped it. */
export function restoreGso(link: Link): IpOp[] {
  const dflt = defaultGso(link.tsoMaxSize);
  return link.gsoMaxSize < dflt ? [{ object: 'link', verb: 'gso', name: link.name, gsoMaxSize: dflt }] : [];
}

export function planApply(input: ApplyInput): Plan {
  const { spec, observed, caps } = input;
  const latencyUs = spec.queueLatencyUs ?? input.defaultLatencyUs ?? DEFAULT_QUEUE_LATENCY_US;
  const plan = emptyPlan();
  for (const link of selectTargets(observed.links, spec.interfaces)) {
    planEgress(plan, link, input, latencyUs);
    planIngress(plan, link, input, latencyUs);
  }
  return plan;
  function shapedOf(link: Link, direction: Direction, tree: ReturnType<typeof htbTree>): void {
    plan.shaped.push({ dev: link.name, direction, ...tree.shaped });
  }
  function planEgress(p: Plan, link: Link, i: ApplyInput, lat: number): void {
    const want = spec.egress;
    if (!want) {
      if (hasOurRoot(observed, link.name)) {
        p.tc.push({ object: 'qdisc', verb: 'delete', dev: link.name, parent: 'root' });
        p.ipAfter.push(...restoreGso(link));
      }
      return;
    }
    const gso = gsoCap(want.rateBps, link.mtu, link.tsoMaxSize);
    if (link.gsoMaxSize !== gso) p.ip.push({ object: 'link', verb: 'gso', name: link.name, gsoMaxSize: gso });
    const tree = htbTree({
      dev: link.name,
      rootExists: hasOurRoot(observed, link.name),
      rateBps: want.rateBps,
      userBurstBits: want.burstBits,
      mtu: link.mtu,
      maxSkb: gso,
      latencyUs: lat,
      caps: i.caps,
    });
    p.tc.push(...tree.ops);
    shapedOf(link, 'egress', tree);
  }
  function planIngress(p: Plan, link: Link, i: ApplyInput, lat: number): void {
    const want = spec.ingress;
    const ifb = ifbName(link.index);
    const existing = observed.links.find((l) => l.name === ifb);
    if (!want) {
      if (existing) {
        p.tc.push(...unredirectOps(observed, link.name));
        p.ipAfter.push({ object: 'link', verb: 'delete', name: ifb });
      }
      return;
    }
    const ip: IpOp[] = [];
    if (!existing) ip.push({ object: 'link', verb: 'add', name: ifb, kind: 'ifb', mtu: link.mtu });
    if (!existing?.up) ip.push({ object: 'link', verb: 'up', name: ifb });
    p.ip.push(...ip);
    // Packets reach the ifb as the sender built them: GRO/GSO super-packets up to 64 KiB.
    const tree = htbTree({
      dev: ifb,
      rootExists: existing !== undefined && hasOurRoot(observed, ifb),
      rateBps: want.rateBps,
      userBurstBits: want.burstBits,
      mtu: link.mtu,
      maxSkb: LEGACY_GSO_MAX,
      latencyUs: lat,
      caps: i.caps,
    });
    // the ifb's tree first, then the redirect into it
    const tc: TcOp[] = [...tree.ops, ...redirectOps(observed, link.name, ifb)];
    p.tc.push(...tc);
    shapedOf(link, 'ingress', tree);
  }
}
