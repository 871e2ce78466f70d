/**
 * apply / remove / status for one target namespace: the one sequence every front end (OCI
 * hook, NRI plugin, CLI) uses. Validation happened before (a QosSpec is valid by type); here
 * we refuse the node's own namespace, read the namespace, plan, and apply.
 */
import type { Capabilities } from './domain/link.js';
import { NetqosError } from './domain/errors.js';
import type { QosSpec } from './domain/spec.js';
import type { Plan, Shaped } from './plan/ops.js';
import { planApply } from './plan/apply-plan.js';
import { isEmptyPlan, planRemove } from './plan/remove-plan.js';
import { applyPlan } from './kernel/apply.js';
import { discover } from './kernel/discover.js';
import { assertNotHost, describe, netnsExists, type NetnsRef } from './kernel/netns.js';
import { capabilities } from './kernel/probe.js';

export interface EngineOptions {
  caps?: Capabilities;
  defaultLatencyUs?: number;
  timeoutMs?: number;
}

export interface ApplyResult {
  shaped: Shaped[];
  plan: Plan;
}

export async function applyQos(ref: NetnsRef, spec: QosSpec, opts: EngineOptions = {}): Promise<ApplyResult> {
  assertNotHost(ref);
  const [caps, observed] = await Promise.all([opts.caps ?? capabilities(), discover(ref, { timeoutMs: opts.timeoutMs })]);
  const plan = planApply({ spec, observed, caps, defaultLatencyUs: opts.defaultLatencyUs });
  const hadOurs = !isEmptyPlan(planRemove(observed));
  try {
    await applyPlan(ref, plan, opts.timeoutMs);
  } catch (e) {
    // a first apply that failed half-way is rolled back, so the node never keeps half a setup
    if (!hadOurs) await removeQos(ref, opts).catch(() => undefined);
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
  if (!netnsExists(ref)) return { present: false, removed: 0 };
  assertNotHost(ref);
  const observed = await discover(ref, { timeoutMs: opts.timeoutMs });
  const plan = planRemove(observed);
  if (isEmptyPlan(plan)) return { present: true, removed: 0 };
  try {
    await applyPlan(ref, plan, opts.timeoutMs);
  } catch (e) {
    // something vanished under us (the container exiting): fine if nothing of ours is left
    if (!netnsExists(ref)) return { present: false, removed: 0 };
    const again = planRemove(await discover(ref, { timeoutMs: opts.timeoutMs }));
    if (!isEmptyPlan(again)) {
      throw new NetqosError('KERNEL', `could not remove shaping from ${describe(ref)}: ${(e as Error).message}`, { cause: e });
    }
  }
  return { present: true, removed: plan.tc.length + plan.ipAfter.length };
}
