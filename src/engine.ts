/**
 * apply / remove / status for one target namespace: the one sequence every front end (OCI
 * hook, NRI plugin, CLI) uses. Validation happened before (a QosSpec is valid by type); here
 * we refuse the node's own namespace, read the namespace, plan, and apply.
 */
import type { Capabilities, Observed } from './domain/link.js';
import { NetqosError } from './domain/errors.js';
import type { QosSpec } from './domain/spec.js';
import { emptyPlan, type Plan, type Shaped } from './plan/ops.js';
import { planApply } from './plan/apply-plan.js';
import { isEmptyPlan, planRemove } from './plan/remove-plan.js';
import { applyPlan } from './kernel/apply.js';
import { discover } from './kernel/discover.js';
import { assertNotHost, describe, netnsExists, type NetnsRef } from './kernel/netns.js';
import { capabilities } from './kernel/probe.js';
import { closeTools, openTools, type NetnsTools } from './kernel/tools-session.js';
import { applyHostQos, removeHostQos, type HostSide } from './engine-host.js';

export interface EngineOptions {
  caps?: Capabilities;
  /** ip and tc sessions already open in the target namespace (the hook opens them early) */
  tools?: NetnsTools;
  defaultLatencyUs?: number;
  timeoutMs?: number;
  /**
   * vethShaping "host" (config): veths are shaped on their peers in the node's namespace, named
   * from this identity (engine-host.ts). Undefined: everything is shaped in the container.
   */
  hostSide?: HostSide;
}

export interface ApplyResult {
  shaped: Shaped[];
  plan: Plan;
}

export async function applyQos(ref: NetnsRef, spec: QosSpec, opts: EngineOptions = {}): Promise<ApplyResult> {
  assertNotHost(ref);
  if (opts.hostSide) {
    const p = await applyHostQos(ref, spec, opts.hostSide, opts, () => removeQos(ref, { ...opts, tools: undefined }));
    return { shaped: p.shaped, plan: p };
  }
  const tools = opts.tools ?? openTools(ref, opts.timeoutMs);
  let plan: Plan;
  let hadOurs = false;
  try {
    const [caps, observed] = await Promise.all([opts.caps ?? capabilities(), discover(tools)]);
    plan = planApply({ spec, observed, caps, defaultLatencyUs: opts.defaultLatencyUs });
    hadOurs = !isEmptyPlan(planRemove(observed));
    await applyPlan(tools, plan);
  } catch (e) {
    await closeTools(tools);
    // a first apply that failed half-way is rolled back, so the node never keeps half a setup
    if (!hadOurs) await removeQos(ref, { ...opts, tools: undefined }).catch(() => undefined);
    throw e;
  }
  return { shaped: plan.shaped, plan };
}

export interface RemoveResult {
  /** false when the namespace was already gone: everything in it went with it */
  present: boolean;
  removed: number;
}

/** Removes everything of ours. Not-found counts as success: a namespace that is gone is clean. */
export async function removeQos(ref: NetnsRef, opts: EngineOptions = {}): Promise<RemoveResult> {
  if (opts.hostSide) {
    // the node's objects go even when the namespace is gone (podman's poststop)
    if (netnsExists(ref)) assertNotHost(ref);
    return removeHostQos(ref, opts.hostSide, opts);
  }
  if (!netnsExists(ref)) return { present: false, removed: 0 };
  assertNotHost(ref);
  let plan = emptyPlan();
  try {
    plan = await withTools(ref, opts, async (tools) => {
      const p = planRemove(await discover(tools));
      await applyPlan(tools, p);
      return p;
    });
  } catch (e) {
    // something vanished under us (the container exiting): fine if nothing of ours is left
    if (!netnsExists(ref)) return { present: false, removed: 0 };
    const again = planRemove(await withTools(ref, { ...opts, tools: undefined }, discover));
    if (!isEmptyPlan(again)) {
      throw new NetqosError('KERNEL', `could not remove shaping from ${describe(ref)}: ${(e as Error).message}`, { cause: e });
    }
  }
  return { present: true, removed: plan.tc.length + plan.ipAfter.length };
}

/**
 * vethShaping "host" when the container's namespace is unknown or gone (podman's poststop, a pod
 * removed while the plugin was away): the node's objects of this identity. Not-found is success.
 */
export function removeNodeShaping(hostSide: HostSide, opts: Pick<EngineOptions, 'timeoutMs'> = {}): Promise<RemoveResult> {
  return removeHostQos(undefined, hostSide, opts);
}

export type { HostSide };

/** Reads a namespace without changing it. */
export function observe(ref: NetnsRef, opts: EngineOptions = {}): Promise<Observed> {
  return withTools(ref, opts, discover);
}

/** Runs f with the namespace's sessions (the caller's, if it opened them) and ends them. */
async function withTools<T>(ref: NetnsRef, opts: EngineOptions, f: (t: NetnsTools) => Promise<T>): Promise<T> {
  const tools = opts.tools ?? openTools(ref, opts.timeoutMs);
  try {
    return await f(tools);
  } finally {
    await closeTools(tools);
  }
}
