/** Applies a plan inside a namespace: at most one ip, one tc and one ip process. */
import type { Plan } from '../plan/ops.js';
import { renderIp, renderTc } from '../plan/render.js';
import { inNetns, type NetnsRef } from './netns.js';

export async function applyPlan(ref: NetnsRef, plan: Plan, timeoutMs?: number): Promise<void> {
  if (plan.ip.length > 0) await inNetns(ref, 'ip', ['-batch', '-'], { input: renderIp(plan.ip), timeoutMs });
  if (plan.tc.length > 0) await inNetns(ref, 'tc', ['-batch', '-'], { input: renderTc(plan.tc), timeoutMs });
  if (plan.ipAfter.length > 0) await inNetns(ref, 'ip', ['-batch', '-'], { input: renderIp(plan.ipAfter), timeoutMs });
}
