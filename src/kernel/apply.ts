/**
 * Applies a plan through the namespace's ip and tc sessions and ends them: ip first (ifbs must
 * exist before tc redirects to them; a question to ip confirms its commands ran), then tc, then
 * what ip does last (deleting ifbs once nothing redirects to them). When ip has nothing left to
 * do, both end together.
 */
import type { Plan } from '../plan/ops.js';
import { renderIp, renderTc } from '../plan/render.js';
import type { NetnsTools } from './tools-session.js';

/**
 * Resolves with the warnings tc printed (the kernel's extack warnings, such as HTB's "quantum
 * of class ... is big", arrive on tc's stderr as "Warning: ..." lines) so callers can log them.
 */
export async function applyPlan(t: NetnsTools, plan: Plan): Promise<string[]> {
  if (plan.ip.length > 0) {
    t.ip.send(renderIp(plan.ip));
    await t.ip.ask(['link show dev lo']);
  }
  if (plan.ipAfter.length === 0) {
    const [tc, ip] = await Promise.allSettled([t.tc.end(renderTc(plan.tc)), t.ip.end()]);
    if (tc.status === 'rejected') throw tc.reason;
    if (ip.status === 'rejected') throw ip.reason;
    return warnings(tc.value.stderr);
  }
  const tc = await t.tc.end(renderTc(plan.tc));
  await t.ip.end(renderIp(plan.ipAfter));
  return warnings(tc.stderr);
}

const warnings = (stderr: string): string[] => stderr.split('\n').filter((l) => /^Warning/i.test(l.trim()));
