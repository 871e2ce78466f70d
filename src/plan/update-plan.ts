/**
 * A live update as a plan: the shaping in force (current-spec.ts) with the update merged in,
 * planned by planApply one interface at a time (the same formulas as apply), and then checked
 * to be changes only: `class replace` of our class and its bulk and small-packet children,
 * `qdisc replace` of the leaves under them (same
 * handle and kind: the kernel changes it in place, its queue stays) and the egress device's
 * gso_max_size. No qdisc is deleted, no root re-created, no ifb or redirect touched, so an open
 * flow keeps going and follows the new rate (measured in test/integration/update.test.ts).
 *
 * A namespace whose shaping is incomplete (a redirect or a leaf gone) would need a repair that
 * is not a change: refused, with `netqos apply` as the way out. Pure.
 */
import type { Capabilities, Observed } from '../domain/link.js';
import { NetqosError } from '../domain/errors.js';
import type { QosSpec } from '../domain/spec.js';
import { applyUpdate, type QosUpdate } from '../domain/update.js';
import { planApply } from './apply-plan.js';
import { currentSpecs, type CurrentInput } from './current-spec.js';
import { BULK_CLASS_ID, CLASS_ID, HOOK_BYPASS_FLOWID, isUserClass, SMALL_CLASS_ID } from './names.js';
import { emptyPlan, type IpOp, type Plan, type TcOp } from './ops.js';
import { renderIpOp, renderTcOp } from './render.js';

export interface UpdateInput extends CurrentInput {
  update: QosUpdate;
  caps: Capabilities;
  /** names the target in messages: "pid 1234", "netns /run/netns/x" */
  target: string;
}

export interface UpdatePlan {
  plan: Plan;
  /** per interface: the spec in force before and after */
  before: Map<string, QosSpec>;
  after: Map<string, QosSpec>;
}

export function planUpdate(input: UpdateInput): UpdatePlan {
  const before = currentSpecs(input);
  if (before.size === 0) {
    throw new NetqosError('NOT_FOUND', `${input.target}: netqos does not shape it (no HTB tree of netqos's in its namespace); shape it with netqos apply first`);
  }
  // classes and unshaped subnets are not read back (the annotations hold their matches):
  // changing the total under them is a new apply, not an in-place change
  const withClasses = [...input.classes].find(([, cs]) => cs.some((c) => isUserClass(c.classid)))?.[0] ??
    (input.observed.filters ?? []).find((f) => f.flowid === HOOK_BYPASS_FLOWID)?.dev;
  if (withClasses) {
    throw new NetqosError(
      'INVALID_ARGUMENT',
      `${input.target}: ${withClasses} has per-destination classes or unshaped subnets, which netqos update does not change; apply the new limits with netqos apply or the annotations`,
    );
  }
  const after = new Map<string, QosSpec>();
  const plan = emptyPlan();
  for (const [name, spec] of before) {
    const next = applyUpdate(spec, input.update, `${input.target} interface ${name}`);
    after.set(name, next);
    const p = planApply({ spec: next, observed: input.observed, caps: input.caps, defaultLatencyUs: input.defaultLatencyUs });
    plan.ip.push(...p.ip);
    plan.tc.push(...p.tc);
    plan.ipAfter.push(...p.ipAfter);
    plan.shaped.push(...p.shaped);
  }
  assertChangesOnly(plan, input.target);
  return { plan, before, after };
}

const TREE_CLASSES: readonly (string | undefined)[] = [CLASS_ID, BULK_CLASS_ID, SMALL_CLASS_ID];
const isChangeTc = (op: TcOp): boolean =>
  (op.object === 'class' && op.verb === 'replace' && TREE_CLASSES.includes(op.classid)) ||
  (op.object === 'qdisc' && op.verb === 'replace' && (op.parent === BULK_CLASS_ID || op.parent === SMALL_CLASS_ID));
const isChangeIp = (op: IpOp): boolean => op.verb === 'gso';

/** Throws when the plan does anything but change limits in place (see the module comment). */
export function assertChangesOnly(plan: Plan, target: string): void {
  const bad = [...plan.tc.filter((op) => !isChangeTc(op)).map(renderTcOp), ...[...plan.ip, ...plan.ipAfter].filter((op) => !isChangeIp(op)).map(renderIpOp)];
  if (bad.length === 0) return;
  throw new NetqosError(
    'KERNEL',
    `${target}: its shaping is incomplete (an update would have to run "${bad[0]}"${bad.length > 1 ? ` and ${bad.length - 1} more` : ''}); repair it with netqos apply`,
  );
}
