/**
 * apply / update / remove / status for one target namespace: the one sequence every front end (OCI
 * hook, NRI plugin, CLI) uses. Validation happened before (a QosSpec is valid by type); here
 * we refuse the node's own namespace, read the namespace, plan, and apply.
 */
import type { Capabilities, Observed } from './domain/link.js';
import { NetqosError } from './domain/errors.js';
import type { QosSpec } from './domain/spec.js';
import { emptyPlan, type Plan, type Shaped } from './plan/ops.js';
import { planApply } from './plan/apply-plan.js';
import { treeDevices } from './plan/current-spec.js';
import { planUpdate, type UpdatePlan } from './plan/update-plan.js';
import { DEFAULT_QUEUE_LATENCY_US } from './plan/params.js';
import type { QosUpdate } from './domain/update.js';
import { readHtbClasses } from './kernel/classes.js';
import { ifbDeletes, isEmptyPlan, planRemove } from './plan/remove-plan.js';
import { renderIp } from './plan/render.js';
import { applyPlan } from './kernel/apply.js';
import { discover, discoverForSetup } from './kernel/discover.js';
import { assertNotHost, describe, netnsExists, type NetnsRef } from './kernel/netns.js';
import { capabilities } from './kernel/probe.js';
import { closeTools, openTools, releaseTools, type NetnsTools, type OpenOptions } from './kernel/tools-session.js';
import { applyVfPlan, prepareVfEgress, restoreVfEgress, type SriovOptions } from './kernel/vf-egress.js';
import { DEFAULT_CONFIG, type Config } from './domain/config.js';
import type { VfRateOp } from './plan/vf-egress.js';
import { applyHostQos, removeHostQos, type HostSide } from './engine-host.js';

export interface EngineOptions {
  caps?: Capabilities;
  /** ip and tc sessions already open in the target namespace (the hook opens them early) */
  tools?: NetnsTools;
  defaultLatencyUs?: number;
  timeoutMs?: number;
  /** SR-IOV VF egress (config vfEgress, sriovStateDir); default software, /run/netqos/sriov */
  sriov?: SriovOptions;
  /**
   * vethShaping "host" (config): veths are shaped on their peers in the node's namespace, named
   * from this identity (engine-host.ts). Undefined: everything is shaped in the container.
   */
  hostSide?: HostSide;
}

export interface ApplyResult {
  shaped: Shaped[];
  plan: Plan;
  /** max_tx_rate changes made on PFs (hardware caps set or restored) */
  vfRates?: VfRateOp[];
  /** things the operator should know: tc's "Warning: ..." lines (none expected), a VF cap rounded up, a VF left to software */
  warnings?: string[];
}

const sriovOf = (opts: EngineOptions): SriovOptions =>
  opts.sriov ?? { mode: DEFAULT_CONFIG.vfEgress, stateDir: DEFAULT_CONFIG.sriovStateDir };

/** The SR-IOV part of the operator's config, for EngineOptions.sriov. */
export const sriovFromConfig = (c: Pick<Config, 'vfEgress' | 'sriovStateDir'>): SriovOptions => ({
  mode: c.vfEgress,
  stateDir: c.sriovStateDir,
});

/**
 * Puts back the PF rates of VFs whose container is gone (its namespace destroyed: the VF's
 * netdev is back in the host's). For front ends that skip removeQos when the namespace is gone.
 */
export async function releaseOrphanVfs(opts: EngineOptions = {}): Promise<VfRateOp[]> {
  return (await restoreVfEgress(undefined, sriovOf(opts))).ops;
}

export async function applyQos(ref: NetnsRef, spec: QosSpec, opts: EngineOptions = {}): Promise<ApplyResult> {
  assertNotHost(ref);
  if (opts.hostSide) {
    const p = await applyHostQos(ref, spec, opts.hostSide, opts, () => removeQos(ref, { ...opts, tools: undefined }));
    return { shaped: p.shaped, plan: p };
  }
  // a first apply that fails half-way is rolled back, so the node never keeps half a setup; a
  // namespace that was shaped keeps its shaping when an update is refused (a bad interface name)
  const rollback = (): Promise<unknown> => removeQos(ref, { ...opts, tools: undefined }).catch(() => undefined);
  const first: Attempt = { hadOurs: false, readAgain: false };
  try {
    return await setup(opts.tools ?? openTools(ref, opts.timeoutMs), spec, opts, discoverForSetup, first);
  } catch (e) {
    if (!first.readAgain) {
      if (!first.hadOurs) await rollback();
      throw e;
    }
  }
  // ip showed a namespace netqos never shaped, but the plan met something tc alone sees (an
  // ingress hook someone else put there): read everything and plan again. Nothing of ours was there.
  try {
    return await setup(openTools(ref, opts.timeoutMs), spec, opts, discover);
  } catch (e) {
    await rollback();
    throw e;
  }
}

/** What a failed setup leaves its caller to decide with. */
interface Attempt {
  /** the namespace held shaping of ours before it */
  hadOurs: boolean;
  /** planned from ip's links alone (discoverForSetup) and refused by ip or tc: worth reading everything */
  readAgain: boolean;
}

/** One discovery, plan and apply on these tools; they are closed when it fails. */
async function setup(
  tools: NetnsTools,
  spec: QosSpec,
  opts: EngineOptions,
  look: (t: NetnsTools) => Promise<Observed>,
  seen: Attempt = { hadOurs: false, readAgain: false },
): Promise<ApplyResult> {
  try {
    const [caps, observed] = await Promise.all([opts.caps ?? capabilities(), look(tools)]);
    // before anything that may throw
    seen.hadOurs = !isEmptyPlan(planRemove(observed));
    const vf = await prepareVfEgress(observed, spec, sriovOf(opts));
    seen.hadOurs ||= vf.plan.drop.length > 0;
    const plan = planApply({ spec, observed, caps, defaultLatencyUs: opts.defaultLatencyUs, egressInHardware: vf.plan.hardwareOnly });
    const warnings = await applyPlan(tools, plan).catch((e: unknown) => {
      seen.readAgain = observed.fresh === true;
      throw e;
    });
    // the PF side last: a namespace that could not be shaped never leaves a cap behind
    await applyVfPlan(vf.plan, sriovOf(opts));
    return { shaped: plan.shaped, plan, vfRates: vf.plan.ops, warnings: [...warnings, ...vf.plan.warnings] };
  } catch (e) {
    await closeTools(tools);
    throw e;
  }
}

export interface UpdateResult extends UpdatePlan {
  shaped: Shaped[];
}

/**
 * Changes the limits in force on a namespace netqos shapes, in place (update-plan.ts): reads
 * the trees back, merges the update, applies class and leaf changes only. NOT_FOUND when the
 * namespace is not shaped by netqos, or the update names a direction that is not shaped.
 */
export async function updateQos(ref: NetnsRef, update: QosUpdate, opts: EngineOptions = {}): Promise<UpdateResult> {
  assertNotHost(ref);
  const tools = opts.tools ?? openTools(ref, opts.timeoutMs);
  try {
    const [caps, observed] = await Promise.all([opts.caps ?? capabilities(), discover(tools)]);
    const devs = [...new Set(treeDevices(observed).map((t) => t.dev))];
    const classes = await readHtbClasses(ref, devs, { timeoutMs: opts.timeoutMs });
    // the leaves' options came with discovery: no second qdisc dump (counters are not needed)
    const qdiscs = new Map(devs.map((d) => [d, observed.qdiscs.filter((q) => q.dev === d).map((q) => ({ ...q, options: q.options ?? {} }))]));
    const res = planUpdate({
      observed,
      classes,
      qdiscs,
      update,
      caps,
      defaultLatencyUs: opts.defaultLatencyUs ?? DEFAULT_QUEUE_LATENCY_US,
      target: describe(ref),
    });
    await applyPlan(tools, res.plan); // ends both sessions
    return { ...res, shaped: res.plan.shaped };
  } catch (e) {
    await closeTools(tools);
    throw e;
  }
}

export interface RemoveResult {
  /** false when the namespace was already gone: everything in it went with it */
  present: boolean;
  removed: number;
  /** max_tx_rate values put back on PFs */
  vfRates?: VfRateOp[];
}

/** Removes everything of ours. Not-found counts as success: a namespace that is gone is clean. */
export async function removeQos(ref: NetnsRef, opts: EngineOptions = {}): Promise<RemoveResult> {
  if (opts.hostSide) {
    // the node's objects go even when the namespace is gone (podman's poststop)
    if (netnsExists(ref)) assertNotHost(ref);
    return removeHostQos(ref, opts.hostSide, opts);
  }
  if (!netnsExists(ref)) return { present: false, removed: 0, vfRates: (await restoreVfEgress(undefined, sriovOf(opts))).ops };
  assertNotHost(ref);
  let plan = emptyPlan();
  let observed: Observed | undefined;
  try {
    plan = await withTools(ref, opts, { tcOnFirstUse: true }, async (tools) => {
      // The kernel takes 15 to 35 ms to unregister an ifb (RCU grace periods): the bulk of a
      // teardown. It starts as soon as ip has listed the links; tc starts then (its spawn would
      // have held up ip's answer by a millisecond) and removes the rest meanwhile. A redirect
      // that still points at the vanishing ifb drops (mirred lets go of it) for the moment until
      // it goes too, on a target that is being torn down.
      let early: string[] = [];
      observed = await discover(tools, (links) => {
        const deletes = ifbDeletes(links);
        early = deletes.map((op) => op.name);
        if (deletes.length > 0) tools.ip.send(renderIp(deletes));
      });
      const p = planRemove(observed);
      await applyPlan(tools, { ...p, ipAfter: p.ipAfter.filter((op) => !(op.verb === 'delete' && early.includes(op.name))) });
      return p;
    });
  } catch (e) {
    // something vanished under us (the container exiting): fine if nothing of ours is left
    if (!netnsExists(ref)) return { present: false, removed: 0, vfRates: (await restoreVfEgress(undefined, sriovOf(opts))).ops };
    const again = planRemove(await withTools(ref, { ...opts, tools: undefined }, {}, discover));
    if (!isEmptyPlan(again)) {
      throw new NetqosError('KERNEL', `could not remove shaping from ${describe(ref)}: ${(e as Error).message}`, { cause: e });
    }
  }
  const restored = await restoreVfEgress(observed, sriovOf(opts));
  return { present: true, removed: plan.tc.length + plan.ipAfter.length + restored.ops.length, vfRates: restored.ops };
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
  return withTools(ref, opts, {}, discover);
}

/**
 * Runs f with the namespace's sessions (the caller's, if it opened them) and ends them: after
 * a success without waiting for the exits (every command was confirmed by an answer), after a
 * failure waiting, so nothing of this attempt still runs when the caller acts again.
 */
async function withTools<T>(ref: NetnsRef, opts: EngineOptions, open: OpenOptions, f: (t: NetnsTools) => Promise<T>): Promise<T> {
  const tools = opts.tools ?? openTools(ref, opts.timeoutMs, open);
  let result: T;
  try {
    result = await f(tools);
  } catch (e) {
    await closeTools(tools);
    throw e;
  }
  releaseTools(tools);
  return result;
}
