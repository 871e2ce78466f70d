/**
 * Applies a plan through the namespace's ip and tc sessions and closes them: ip first (ifbs must
 * exist before tc redirects to them; a question to ip confirms its commands ran), then tc, then
 * what ip does last (deleting ifbs once nothing redirects to them). Each part is confirmed by a
 * question asked after it (runner.ts, finish): the plan is in force when this resolves, and the
 * two processes exit after that.
 */
import { tcBeforeCreated, type Plan } from '../plan/ops.js';
import { renderIp, renderTc } from '../plan/render.js';
import { IP_CHECK, TC_CHECK, type NetnsTools } from './tools-session.js';

/**
 * Resolves with the warnings tc printed (the kernel's extack warnings, such as HTB's "quantum
 * of class ... is big", arrive on tc's stderr as "Warning: ..." lines) so callers can log them.
 */
export async function applyPlan(t: NetnsTools, plan: Plan): Promise<string[]> {
  let tcLeft = plan.tc;
  if (plan.ip.length > 0) {
    t.ip.send(renderIp(plan.ip));
    // tc's commands up to the first one naming a device ip creates (a container's egress tree)
    // run while ip creates it: measured 0.2 to 0.3 ms off a container setup
    const cut = tcBeforeCreated(plan);
    if (cut > 0) t.tc.send(renderTc(plan.tc.slice(0, cut)));
    tcLeft = plan.tc.slice(cut);
    await t.ip.ask([IP_CHECK]);
  }
  if (plan.ipAfter.length === 0) t.ip.close();
  let stderr = '';
  if (plan.tc.length > 0) stderr = await t.tc.finish(renderTc(tcLeft), TC_CHECK);
  else t.tc.close();
  if (plan.ipAfter.length > 0) await t.ip.finish(renderIp(plan.ipAfter), IP_CHECK);
  return warnings(stderr);
}

const warnings = (stderr: string): string[] => stderr.split('\n').filter((l) => /^Warning/i.test(l.trim()));
