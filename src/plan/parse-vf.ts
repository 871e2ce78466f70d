/**
 * Parses a PF's `ip -json link show dev <pf>` into the rate limits of its VFs. Pure.
 *
 * The keys are the ones iproute2's print_vfinfo (ip/ipaddress.c) prints, unchanged since JSON
 * output came in v4.14 (commit d0e72011): per VF `"vf": N`, the IFLA_VF_RATE pair as
 * `"rate": {"max_tx": Mbit, "min_tx": Mbit}` (both always printed, 0 = no limit), and the
 * older IFLA_VF_TX_RATE as `"tx_rate": Mbit` (printed only when not 0; the kernel fills it
 * with the same max_tx_rate). Note the JSON says max_tx, not max_tx_rate as the text output does.
 */
import { NetqosError } from '../domain/errors.js';

export interface VfRate {
  vf: number;
  /** 0 = not limited */
  maxTxMbit: number;
  minTxMbit: number;
}

interface VfJson {
  vf?: number;
  tx_rate?: number;
  rate?: { max_tx?: number; min_tx?: number };
}

export function parseVfRates(text: string, pf: string): VfRate[] {
  let rows: unknown;
  try {
    rows = JSON.parse(text);
  } catch (e) {
    throw new NetqosError('KERNEL', `ip -json link show dev ${pf} printed something that is not JSON: ${JSON.stringify(text.slice(0, 80))}`, { cause: e });
  }
  const link = Array.isArray(rows) ? (rows[0] as { vfinfo_list?: VfJson[] } | undefined) : undefined;
  if (link === undefined) throw new NetqosError('KERNEL', `ip -json link show dev ${pf} did not print the device`);
  return (link.vfinfo_list ?? [])
    .filter((v) => typeof v.vf === 'number')
    .map((v) => ({
      vf: v.vf as number,
      maxTxMbit: v.rate?.max_tx ?? v.tx_rate ?? 0,
      minTxMbit: v.rate?.min_tx ?? 0,
    }));
}
