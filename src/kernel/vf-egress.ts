/**
 * The shell around src/plan/vf-egress.ts: finds the container's VFs and their PFs (sysfs),
 * reads the PFs' current VF rates, sets and restores max_tx_rate, and keeps the remembered
 * values. The PF lives in the host's network namespace, and so do the hook and the NRI daemon:
 * `ip` runs here without entering any namespace.
 */
import type { VfEgress } from '../domain/config.js';
import { NetqosError } from '../domain/errors.js';
import type { Observed } from '../domain/link.js';
import type { QosSpec } from '../domain/spec.js';
import { parseVfRates } from '../plan/parse-vf.js';
import { planVfEgress, planVfRestore, renderVfOp, type VfEgressPlan, type VfLink, type VfState } from '../plan/vf-egress.js';
import { run } from './runner.js';
import { findPf, pciOfNetdev, SYSFS_ROOT, vfWhereabouts } from './sriov.js';
import { toolPath } from './tools.js';
import { dropVfState, readVfStates, writeVfState } from './vf-state.js';

/** Runs `ip ARGS` in the host's namespace and gives its stdout. Tests pass a fake. */
export type HostIp = (args: readonly string[]) => Promise<string>;

export const hostIp: HostIp = async (args) => (await run(toolPath('ip'), args)).stdout;

export interface SriovOptions {
  mode: VfEgress;
  stateDir: string;
  /** default /sys */
  sysRoot?: string;
  /** default: the real ip */
  ip?: HostIp;
}

export interface VfPrepared {
  plan: VfEgressPlan;
  vfs: VfLink[];
}

const EMPTY: VfEgressPlan = { ops: [], save: [], drop: [], hardwareOnly: [], warnings: [] };

/** What to do on the PFs for this namespace and spec. Reads only. */
export async function prepareVfEgress(observed: Observed, spec: QosSpec, o: SriovOptions): Promise<VfPrepared> {
  const { states, bad } = readVfStates(o.stateDir);
  const warnings = bad.map((f) => `${o.stateDir}/${f}: unreadable SR-IOV state file, ignored`);
  // the common case costs one readdir: software mode and nothing of ours on any PF
  if (o.mode === 'software' && states.length === 0) return { plan: { ...EMPTY, warnings }, vfs: [] };
  const { vfs, unresolved } = await findVfs(observed, o);
  const plan = planVfEgress({ mode: o.mode, spec, links: observed.links, vfs, unresolved, states });
  plan.warnings.unshift(...warnings);
  return { plan, vfs };
}

/** Remembers first (a crash after the set still knows what to restore), then sets, then forgets. */
export async function applyVfPlan(plan: VfEgressPlan, o: SriovOptions): Promise<void> {
  const ip = o.ip ?? hostIp;
  for (const s of plan.save) writeVfState(o.stateDir, s);
  for (const op of plan.ops) {
    try {
      await ip(renderVfOp(op));
    } catch (e) {
      // the PF kept its old value: a VF remembered just now has nothing of ours to restore
      for (const s of plan.save) if (s.pf === op.pf && s.vf === op.vf && plan.fresh?.includes(s.vfPci)) dropVfState(o.stateDir, s);
      throw new NetqosError('KERNEL', `cannot set max_tx_rate ${op.maxTxMbit} on ${op.pf} vf ${op.vf}: ${(e as Error).message}`, { cause: e });
    }
  }
  for (const s of plan.drop) dropVfState(o.stateDir, s);
}

/**
 * Restores what netqos set for the VFs of a namespace being unshaped (observed, when it still
 * exists) and for every VF whose container is gone: its netdev is back in the host's namespace
 * (a destroyed namespace hands physical devices back) or the VF itself is gone.
 */
export async function restoreVfEgress(observed: Observed | undefined, o: SriovOptions): Promise<VfEgressPlan> {
  const { states } = readVfStates(o.stateDir);
  if (states.length === 0) return EMPTY;
  const sys = o.sysRoot ?? SYSFS_ROOT;
  const inNs = new Set((observed?.links ?? []).map((l) => l.parentDev).filter((p): p is string => p !== undefined));
  const where = new Map(states.map((s) => [s.vfPci, vfWhereabouts(sys, s.vfPci)]));
  const chosen = states.filter((s) => inNs.has(s.vfPci) || where.get(s.vfPci) !== 'away');
  const gone = chosen.filter((s) => where.get(s.vfPci) === 'gone');
  for (const s of gone) dropVfState(o.stateDir, s); // no VF, nothing to restore on
  const live = chosen.filter((s) => where.get(s.vfPci) !== 'gone');
  const current = new Map<string, number>();
  for (const [pf, list] of groupBy(live, (s) => s.pf)) {
    const rates = await pfRates(pf, o).catch(() => undefined);
    for (const s of list) {
      const r = rates?.find((x) => x.vf === s.vf);
      if (r) current.set(s.vfPci, r.maxTxMbit);
    }
  }
  const plan = planVfRestore(live, current);
  await applyVfPlan(plan, o);
  return plan;
}

async function findVfs(observed: Observed, o: SriovOptions): Promise<{ vfs: VfLink[]; unresolved: { dev: string; reason: string }[] }> {
  const sys = o.sysRoot ?? SYSFS_ROOT;
  const found: { dev: string; at: { vfPci: string; pfPci: string; pf: string; vf: number } }[] = [];
  const unresolved: { dev: string; reason: string }[] = [];
  for (const link of observed.links) {
    if (link.kind !== 'physical' && link.kind !== 'vf') continue;
    const pci = link.parentDev ?? pciOfNetdev(sys, link.name);
    if (pci === undefined) continue;
    const r = findPf(sys, pci);
    if (r === undefined) continue; // a PF or a plain NIC handed to the container
    link.kind = 'vf';
    if (r.ok) found.push({ dev: link.name, at: r.value });
    else unresolved.push({ dev: link.name, reason: r.reason });
  }
  const vfs: VfLink[] = [];
  for (const [pf, list] of groupBy(found, (f) => f.at.pf)) {
    let rates;
    try {
      rates = await pfRates(pf, o);
    } catch (e) {
      for (const f of list) unresolved.push({ dev: f.dev, reason: (e as Error).message });
      continue;
    }
    for (const f of list) {
      const r = rates.find((x) => x.vf === f.at.vf);
      if (r) vfs.push({ dev: f.dev, ...f.at, maxTxMbit: r.maxTxMbit });
      else unresolved.push({ dev: f.dev, reason: `ip link show dev ${pf} lists no vf ${f.at.vf}` });
    }
  }
  return { vfs, unresolved };
}

async function pfRates(pf: string, o: SriovOptions) {
  return parseVfRates(await (o.ip ?? hostIp)(['-json', 'link', 'show', 'dev', pf]), pf);
}

function groupBy<T>(items: readonly T[], key: (t: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const t of items) m.set(key(t), [...(m.get(key(t)) ?? []), t]);
  return m;
}
