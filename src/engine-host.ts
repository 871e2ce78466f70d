/**
 * apply / remove / gc with vethShaping "host": the container's namespace and the node's, each
 * with its own ip and tc sessions, planned together (plan/host-side.ts). The node's namespace
 * is a parameter (default: PID 1's), so tests hand in a namespace of their own playing the node.
 */
import { NetqosError } from './domain/errors.js';
import type { Capabilities } from './domain/link.js';
import type { QosSpec } from './domain/spec.js';
import { applyPlan } from './kernel/apply.js';
import { discover } from './kernel/discover.js';
import { discoverHost } from './kernel/discover-host.js';
import { describe, netnsExists, netnsIdentity, netnsPath, type NetnsRef } from './kernel/netns.js';
import { capabilities } from './kernel/probe.js';
import { closeTools, openTools, type NetnsTools } from './kernel/tools-session.js';
import { confirmed, findOrphans, planGc, type Orphan } from './plan/host-gc.js';
import { checkIdentity } from './plan/host-names.js';
import { peerOf } from './plan/host-peer.js';
import { planHostApply, planHostRemove } from './plan/host-side.js';
import type { Plan } from './plan/ops.js';
import { isEmptyPlan, planRemove } from './plan/remove-plan.js';

/** the node's namespace when nobody says otherwise: PID 1's (the DaemonSet runs with hostPID) */
export const NODE_NETNS: NetnsRef = { path: '/proc/1/ns/net' };

export interface HostSide {
  /** the container's identity (container id, pod sandbox id): names the ifbs on the node */
  identity: string;
  /** the node's namespace; default NODE_NETNS */
  netns?: NetnsRef;
}

export interface HostEngineOptions {
  caps?: Capabilities;
  tools?: NetnsTools;
  defaultLatencyUs?: number;
  timeoutMs?: number;
}

const nodeRef = (h: { netns?: NetnsRef }): NetnsRef => h.netns ?? NODE_NETNS;

function assertDistinct(container: NetnsRef, node: NetnsRef): void {
  const a = netnsIdentity(netnsPath(container));
  if (a !== undefined && a === netnsIdentity(netnsPath(node))) {
    throw new NetqosError('HOST_NETNS', `${describe(container)} is the node's namespace ${netnsPath(node)}; netqos never shapes the node's own interfaces`);
  }
}

const vethPeerIndexes = (o: Awaited<ReturnType<typeof discover>>): number[] =>
  o.links.filter((l) => l.kind === 'veth').flatMap((l) => peerOf(o, l.name)?.peerIndex ?? []);

const count = (p: Plan): number => p.ip.length + p.tc.length + p.ipAfter.length;

/**
 * Shapes the container; veths on their host peers. The node's plan runs first: when the config
 * changed from "container", the veth is never unshaped in between. `rollback` undoes a first
 * apply that failed half-way.
 */
export async function applyHostQos(
  ref: NetnsRef,
  spec: QosSpec,
  host: HostSide,
  opts: HostEngineOptions,
  rollback: () => Promise<unknown>,
): Promise<Plan> {
  checkIdentity(host.identity);
  assertDistinct(ref, nodeRef(host));
  const tools = opts.tools ?? openTools(ref, opts.timeoutMs);
  const node = openTools(nodeRef(host), opts.timeoutMs);
  let hadOurs = false;
  try {
    const [caps, container] = await Promise.all([opts.caps ?? capabilities(), discover(tools)]);
    const observedHost = await discoverHost(node, vethPeerIndexes(container));
    const plans = planHostApply({ identity: host.identity, spec, container, host: observedHost, caps, defaultLatencyUs: opts.defaultLatencyUs });
    hadOurs = !isEmptyPlan(planRemove(container)) || !isEmptyPlan(planHostRemove({ identity: host.identity, container, host: observedHost }));
    await applyPlan(node, plans.host);
    await applyPlan(tools, plans.container);
    return { ...plans.container, shaped: [...plans.host.shaped, ...plans.container.shaped] };
  } catch (e) {
    await Promise.all([closeTools(tools), closeTools(node)]);
    if (!hadOurs) await rollback().catch(() => undefined);
    throw e;
  }
}

export interface HostRemoveResult {
  present: boolean;
  removed: number;
}

/**
 * Removes everything of ours for the container: in its namespace (when it still exists) and on
 * the node (its host peers' trees and redirects, and every ifb whose alias names the identity,
 * also when the namespace is gone). Not-found counts as success.
 */
export async function removeHostQos(ref: NetnsRef | undefined, host: Partial<HostSide>, opts: HostEngineOptions = {}): Promise<HostRemoveResult> {
  if (host.identity !== undefined) checkIdentity(host.identity);
  const present = ref !== undefined && netnsExists(ref);
  if (ref !== undefined && present) assertDistinct(ref, nodeRef(host));
  const tools = present ? (opts.tools ?? openTools(ref, opts.timeoutMs)) : undefined;
  if (!present && opts.tools) await closeTools(opts.tools);
  const node = openTools(nodeRef(host), opts.timeoutMs);
  let removed = 0;
  try {
    const container = tools ? await discover(tools).catch(() => undefined) : undefined;
    const observedHost = await discoverHost(node, container ? vethPeerIndexes(container) : []);
    const hostPlan = planHostRemove({ identity: host.identity, container, host: observedHost });
    await applyPlan(node, hostPlan);
    removed += count(hostPlan);
    if (tools && container) {
      const p = planRemove(container);
      await applyPlan(tools, p);
      removed += count(p);
    }
  } catch (e) {
    await Promise.all([tools ? closeTools(tools) : undefined, closeTools(node)]);
    // Something vanished under us: the kernel tears a deleted namespace down in the background,
    // so its veth's node end can be listed and gone a moment later ("Cannot find device").
    // What is ours on the node is planned again from what is there now (measured in CI: the
    // first plan named the vanished peer), then it is fine if nothing of ours is left.
    await removeNodeLeft(host).catch(() => undefined);
    const left = await leftOnNode(host);
    if (left > 0 || (ref !== undefined && netnsExists(ref) && (await leftInContainer(ref)) > 0)) {
      throw new NetqosError('KERNEL', `could not remove host-side shaping of ${host.identity ?? describe(ref!)}: ${(e as Error).message}`, { cause: e });
    }
  } finally {
    if (tools) await closeTools(tools);
  }
  return { present, removed };
}

async function removeNodeLeft(host: Partial<HostSide>): Promise<void> {
  if (host.identity === undefined) return;
  const node = openTools(nodeRef(host));
  try {
    await applyPlan(node, planHostRemove({ identity: host.identity, host: await discoverHost(node) }));
  } finally {
    await closeTools(node);
  }
}

async function leftOnNode(host: Partial<HostSide>): Promise<number> {
  if (host.identity === undefined) return 0;
  const node = openTools(nodeRef(host));
  try {
    return count(planHostRemove({ identity: host.identity, host: await discoverHost(node) }));
  } finally {
    await closeTools(node);
  }
}

async function leftInContainer(ref: NetnsRef): Promise<number> {
  const t = openTools(ref);
  try {
    return count(planRemove(await discover(t)));
  } finally {
    await closeTools(t);
  }
}

export interface GcOptions {
  /** the node's namespace; default NODE_NETNS */
  netns?: NetnsRef;
  /** list only */
  dryRun?: boolean;
  /** how long a candidate must stay an orphan before it is removed, ms (default 1000) */
  graceMs?: number;
  timeoutMs?: number;
}

export interface GcResult {
  orphans: Orphan[];
  removed: number;
}

/** Finds (and unless dryRun removes) our ifbs on the node whose container is gone. */
export async function gcHost(opts: GcOptions = {}): Promise<GcResult> {
  const look = async (): Promise<Orphan[]> => {
    const t = openTools(nodeRef(opts), opts.timeoutMs);
    try {
      return findOrphans(await discoverHost(t));
    } finally {
      await closeTools(t);
    }
  };
  const first = await look();
  if (opts.dryRun || first.length === 0) return { orphans: first, removed: 0 };
  await new Promise((r) => setTimeout(r, opts.graceMs ?? 1000));
  const orphans = confirmed(first, await look());
  if (orphans.length === 0) return { orphans, removed: 0 };
  const t = openTools(nodeRef(opts), opts.timeoutMs);
  const plan = planGc(orphans);
  try {
    await applyPlan(t, plan);
  } catch (e) {
    await closeTools(t);
    // a teardown may have deleted one of them meanwhile: fine if none is left
    const still = await look();
    if (still.some((o) => orphans.some((x) => x.ifb === o.ifb && x.ifindex === o.ifindex))) throw e;
  }
  return { orphans, removed: plan.ipAfter.length };
}
