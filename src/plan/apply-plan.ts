/**
 * QosSpec + what the namespace holds now -> the operations that make it shaped as asked.
 * Idempotent by construction: applying the plan of an already-shaped namespace changes
 * nothing, and a new rate becomes a `class replace` (in place, flows keep going).
 */
import type { Capabilities, Link, Observed } from '../domain/link.js';
import type { DirectionLimit, QosSpec } from '../domain/spec.js';
import type { IpOp, Plan } from './ops.js';
import { emptyPlan } from './ops.js';
import { htbTree } from './htb-tree.js';
import { bypassOps, redirectOps, unredirectOps } from './ingress-hook.js';
import { ifbName, isOurIfb, ROOT_HANDLE } from './names.js';
import { DEFAULT_QUEUE_LATENCY_US, defaultGso, gsoCap, LEGACY_GSO_MAX } from './params.js';
import { selectTargets } from './select.js';

export interface ApplyInput {
  spec: QosSpec;
  observed: Observed;
  caps: Capabilities;
  /** the operator's default queue latency (config), used when the spec has none */
  defaultLatencyUs?: number;
  /** SR-IOV VFs whose egress the PF caps in hardware alone (src/plan/vf-egress.ts): no egress tree */
  egressInHardware?: readonly string[];
}

export const ourRoot = (o: Observed, dev: string) =>
  o.qdiscs.find((q) => q.dev === dev && q.parent === 'root' && q.kind === 'htb' && q.handle === ROOT_HANDLE);
export const hasOurRoot = (o: Observed, dev: string): boolean => ourRoot(o, dev) !== undefined;

/**
 * What ip alone can tell of a namespace netqos never shaped: no ifb of ours, and no HTB root on
 * any device (ip prints each device's root qdisc kind; ours is always HTB). Then planning needs
 * nothing from tc: no tree of ours to keep, no redirect to an ifb of ours. An ingress hook
 * someone else put there is invisible here; the plan's `qdisc add ... ingress` fails on it.
 */
export const neverShaped = (links: readonly Link[]): boolean =>
  links.every((l) => !isOurIfb(l.name) && l.rootQdisc !== undefined && l.rootQdisc !== 'htb');

/** What a tree's device holds now, for htbTree: its root, qdiscs and root filters. */
export const existing = (o: Observed, dev: string) => ({
  root: ourRoot(o, dev),
  qdiscs: o.qdiscs.filter((q) => q.dev === dev),
  filters: (o.filters ?? []).filter((f) => f.dev === dev && f.parent === ROOT_HANDLE),
});

/** Gives a device back the gso_max_size it had before we capped it. */
export function restoreGso(link: Link): IpOp[] {
  const dflt = defaultGso(link.tsoMaxSize);
  return link.gsoMaxSize < dflt ? [{ object: 'link', verb: 'gso', name: link.name, gsoMaxSize: dflt }] : [];
}

export function planApply(input: ApplyInput): Plan {
  const { spec, observed } = input;
  const ctx: Ctx = {
    input,
    plan: emptyPlan(),
    latencyUs: spec.queueLatencyUs ?? input.defaultLatencyUs ?? DEFAULT_QUEUE_LATENCY_US,
  };
  const overrides = spec.perInterface ?? {};
  for (const link of selectTargets(observed.links, spec.interfaces, Object.keys(overrides))) {
    const own = Object.hasOwn(overrides, link.name) ? overrides[link.name] : undefined;
    // an override replaces the pod-wide limit of its direction on its interface only
    planEgress(ctx, link, own?.egress ?? spec.egress);
    planIngress(ctx, link, own?.ingress ?? spec.ingress);
  }
  return ctx.plan;
}

interface Ctx {
  input: ApplyInput;
  plan: Plan;
  latencyUs: number;
}

function planEgress({ input, plan, latencyUs }: Ctx, link: Link, wanted: DirectionLimit | undefined): void {
  const { observed } = input;
  // a VF capped in hardware only (config vfEgress "hardware") gets no egress tree
  const want = input.egressInHardware?.includes(link.name) ? undefined : wanted;
  if (!want) {
    if (hasOurRoot(observed, link.name)) {
      plan.tc.push({ object: 'qdisc', verb: 'delete', dev: link.name, parent: 'root' });
      plan.ipAfter.push(...restoreGso(link));
    }
    return;
  }
  const gso = gsoCap(want.rateBps, link.mtu, link.tsoMaxSize);
  if (link.gsoMaxSize !== gso) plan.ip.push({ object: 'link', verb: 'gso', name: link.name, gsoMaxSize: gso });
  const tree = htbTree({
    dev: link.name,
    ...existing(observed, link.name),
    rateBps: want.rateBps,
    userBurstBits: want.burstBits,
    mtu: link.mtu,
    maxSkb: gso,
    latencyUs,
    caps: input.caps,
    ...(want.classes ? { classes: want.classes } : {}),
    ...(input.spec.unshapedSubnets ? { unshaped: input.spec.unshapedSubnets } : {}),
    side: 'dst',
  });
  plan.tc.push(...tree.ops);
  plan.shaped.push({ dev: link.name, direction: 'egress', ...tree.shaped });
}

function planIngress({ input, plan, latencyUs }: Ctx, link: Link, want: DirectionLimit | undefined): void {
  const { observed } = input;
  const ifb = ifbName(link.index);
  const ifbLink = observed.links.find((l) => l.name === ifb);
  if (!want) {
    if (ifbLink) {
      plan.tc.push(...unredirectOps(observed, link.name));
      plan.ipAfter.push({ object: 'link', verb: 'delete', name: ifb });
    }
    return;
  }
  if (!ifbLink) plan.ip.push({ object: 'link', verb: 'add', name: ifb, kind: 'ifb', mtu: link.mtu });
  if (ifbLink && !ifbLink.up) plan.ip.push({ object: 'link', verb: 'up', name: ifb });
  // Packets reach the ifb as the sender built them: GRO/GSO super-packets up to 64 KiB, which
  // the leaves of slow classes cut into frames (params.ts segments)
  const tree = htbTree({
    dev: ifb,
    ...(ifbLink ? existing(observed, ifb) : {}),
    rateBps: want.rateBps,
    userBurstBits: want.burstBits,
    mtu: link.mtu,
    maxSkb: LEGACY_GSO_MAX,
    segment: true,
    latencyUs,
    caps: input.caps,
    ...(want.classes ? { classes: want.classes } : {}),
    side: 'src',
  });
  // the ifb's tree first, then the redirect into it; unshaped subnets never reach the ifb
  plan.tc.push(...tree.ops, ...redirectOps(observed, link.name, ifb), ...bypassOps(observed, link.name, input.spec.unshapedSubnets ?? []));
  const shaped = { dev: link.name, direction: 'ingress' as const, ...tree.shaped };
  if (input.spec.unshapedSubnets?.length) shaped.unshaped = [...input.spec.unshapedSubnets];
  plan.shaped.push(shaped);
}
