/**
 * SR-IOV VF egress in hardware: what to set on the PF and what to remember or restore. Pure.
 *
 * A VF's egress can be capped by its PF (`ip link set dev PF vf N max_tx_rate MBIT`), in whole
 * Mbit/s. netqos remembers the value it replaced (a VfState, kept by src/kernel/vf-state.ts)
 * and sets it back when the container goes, when its egress limit goes, or when the operator
 * switches back to software. Ingress always stays in software (ifb): a PF has no receive cap.
 */
import type { VfEgress } from '../domain/config.js';
import type { Link } from '../domain/link.js';
import type { DirectionLimit, QosSpec } from '../domain/spec.js';
import { selectTargets } from './select.js';

/** A VF netdev of the container and where its PF is (found in sysfs by src/kernel/sriov.ts). */
export interface VfLink {
  /** the VF's netdev in the container */
  dev: string;
  vfPci: string;
  pfPci: string;
  /** the PF's netdev, in the host's namespace */
  pf: string;
  /** the VF's index on the PF (virtfnN) */
  vf: number;
  /** max_tx_rate the PF reports for it now, Mbit/s (0 = none) */
  maxTxMbit: number;
}

/** What netqos replaced on a PF, remembered until it is put back. */
export interface VfState {
  vfPci: string;
  pfPci: string;
  pf: string;
  vf: number;
  /** the value before netqos set one: what restore puts back */
  previousMbit: number;
  /** the value netqos set */
  setMbit: number;
}

export interface VfRateOp {
  pf: string;
  vf: number;
  maxTxMbit: number;
}

export interface VfEgressPlan {
  /** `ip link set dev PF vf N max_tx_rate M`, in the host's namespace */
  ops: VfRateOp[];
  /** states to write (new, or with a new setMbit) */
  save: VfState[];
  /** states to delete once their op ran */
  drop: VfState[];
  /** VFs (PCI addresses) remembered for the first time: forgotten again if their set fails */
  fresh?: string[];
  /** VFs whose egress is in hardware only: the planner leaves their egress HTB out */
  hardwareOnly: string[];
  warnings: string[];
}

export interface VfEgressInput {
  mode: VfEgress;
  spec: QosSpec;
  /** every link of the namespace (the targets are chosen as planApply chooses them) */
  links: readonly Link[];
  /** the VFs among them whose PF was found */
  vfs: readonly VfLink[];
  /** VF-looking links whose PF was not found, with why */
  unresolved: readonly { dev: string; reason: string }[];
  /** every remembered state (of any container); matched by the VF's PCI address */
  states: readonly VfState[];
}

const MBIT = 1e6;

/** The hardware cap for a rate: whole Mbit/s, rounded up (the limit is never tighter than asked), at least 1. */
export const hardwareMbit = (rateBps: number): number => Math.max(1, Math.ceil(rateBps / MBIT));

/** the egress limit of one device: its per-interface override, else the pod-wide one */
export const egressOf = (spec: QosSpec, dev: string): DirectionLimit | undefined => spec.perInterface?.[dev]?.egress ?? spec.egress;

export function planVfEgress(input: VfEgressInput): VfEgressPlan {
  const plan: VfEgressPlan = { ops: [], save: [], drop: [], hardwareOnly: [], warnings: [] };
  const targets = new Set(selectTargets(input.links, input.spec.interfaces).map((l) => l.name));
  for (const vf of input.vfs) {
    const state = input.states.find((s) => s.vfPci === vf.vfPci);
    const want = targets.has(vf.dev) ? egressOf(input.spec, vf.dev) : undefined;
    if (input.mode === 'software' || want === undefined) {
      if (state) restoreInto(plan, state, vf.maxTxMbit);
      continue;
    }
    const mbit = hardwareMbit(want.rateBps);
    if (want.rateBps < MBIT) {
      plan.warnings.push(`${vf.dev}: egress ${want.rateBps} bit/s is below the 1 Mbit/s a PF can set; its hardware cap is 1 Mbit/s`);
    }
    const needsSoftware = (want.classes?.length ?? 0) > 0 || (input.spec.unshapedSubnets?.length ?? 0) > 0;
    if (input.mode === 'hardware' && !needsSoftware) plan.hardwareOnly.push(vf.dev);
    if (input.mode === 'hardware' && needsSoftware) {
      plan.warnings.push(`${vf.dev}: classes and unshaped subnets need the software tree; egress is shaped in both`);
    }
    if (vf.maxTxMbit !== mbit) plan.ops.push({ pf: vf.pf, vf: vf.vf, maxTxMbit: mbit });
    if (state?.setMbit !== mbit) {
      const previousMbit = state ? state.previousMbit : vf.maxTxMbit;
      plan.save.push({ vfPci: vf.vfPci, pfPci: vf.pfPci, pf: vf.pf, vf: vf.vf, previousMbit, setMbit: mbit });
      if (!state) (plan.fresh ??= []).push(vf.vfPci);
    }
  }
  if (input.mode !== 'software') {
    for (const u of input.unresolved) {
      if (targets.has(u.dev) && egressOf(input.spec, u.dev)) {
        plan.warnings.push(`${u.dev}: egress shaped in software, not by the PF: ${u.reason}`);
      }
    }
  }
  return plan;
}

/**
 * Puts remembered values back: for VFs seen in the container (current rate known) and for
 * orphans (the container is gone; current unknown, so the op is always emitted).
 */
export function planVfRestore(states: readonly VfState[], current?: ReadonlyMap<string, number>): VfEgressPlan {
  const plan: VfEgressPlan = { ops: [], save: [], drop: [], hardwareOnly: [], warnings: [] };
  for (const s of states) restoreInto(plan, s, current?.get(s.vfPci));
  return plan;
}

function restoreInto(plan: VfEgressPlan, state: VfState, currentMbit: number | undefined): void {
  plan.drop.push(state);
  if (currentMbit === state.previousMbit) return;
  if (currentMbit === undefined || currentMbit === state.setMbit) {
    plan.ops.push({ pf: state.pf, vf: state.vf, maxTxMbit: state.previousMbit });
    return;
  }
  // someone changed it after us (the CNI plugin, an operator): theirs wins, ours is forgotten
  plan.warnings.push(
    `${state.pf} vf ${state.vf}: max_tx_rate is ${currentMbit}, not the ${state.setMbit} netqos set; left as it is (netqos would have restored ${state.previousMbit})`,
  );
}

export const renderVfOp = (op: VfRateOp): string[] => ['link', 'set', 'dev', op.pf, 'vf', String(op.vf), 'max_tx_rate', String(op.maxTxMbit)];
