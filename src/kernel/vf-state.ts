/**
 * The VF rates netqos replaced, one small JSON file per VF (<dir>/<vf PCI address>.json),
 * until they are restored.
 *
 * Why a file, when everything else netqos does is found again from the kernel alone: the
 * value a PF had for a VF before netqos set its own is gone from the kernel once replaced, and
 * restoring 0 ("no limit") would wipe a cap the CNI plugin or an operator had set. The default
 * dir is on /run (tmpfs): it empties on reboot, as the VF rates themselves do. Each write goes
 * to a temporary file in the same dir and is renamed over the old one, so a crash leaves the
 * old or the new file, never half of one.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NetqosError } from '../domain/errors.js';
import type { VfState } from '../plan/vf-egress.js';

const fileOf = (dir: string, vfPci: string): string => join(dir, `${vfPci}.json`);

/** Every remembered state; a file that does not parse is skipped (reported by the caller's log). */
export function readVfStates(dir: string): { states: VfState[]; bad: string[] } {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.json')).sort();
  } catch {
    return { states: [], bad: [] }; // no dir: nothing remembered
  }
  const states: VfState[] = [];
  const bad: string[] = [];
  for (const name of names) {
    try {
      const s = JSON.parse(readFileSync(join(dir, name), 'utf8')) as VfState;
      if (typeof s.pf === 'string' && Number.isInteger(s.vf) && Number.isInteger(s.previousMbit) && typeof s.vfPci === 'string') states.push(s);
      else bad.push(name);
    } catch {
      bad.push(name);
    }
  }
  return { states, bad };
}

export function writeVfState(dir: string, s: VfState): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const tmp = join(dir, `.${s.vfPci}.${process.pid}.tmp`);
    writeFileSync(tmp, `${JSON.stringify(s)}\n`, { mode: 0o600 });
    renameSync(tmp, fileOf(dir, s.vfPci));
  } catch (e) {
    throw new NetqosError('KERNEL', `cannot remember the previous max_tx_rate of ${s.pf} vf ${s.vf} in ${dir}: ${(e as Error).message}`, { cause: e });
  }
}

export function dropVfState(dir: string, s: VfState): void {
  rmSync(fileOf(dir, s.vfPci), { force: true });
}
