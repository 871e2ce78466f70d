/**
 * The only sysfs reader: from an SR-IOV VF's PCI address to its PF (PCI address and netdev
 * name) and its VF index. The sysfs root is a parameter so tests pass a fake tree.
 *
 * Layout (drivers/pci/iov.c pci_iov_sysfs_link; Documentation/ABI/testing/sysfs-bus-pci):
 *   <sys>/bus/pci/devices/<addr>       symlink to ../../../devices/pci<dom:bus>/.../<addr>
 *   <sys>/bus/pci/devices/<vf>/physfn  symlink to ../<pf>        (only a VF has it)
 *   <sys>/bus/pci/devices/<pf>/virtfnN symlink to ../<vf>        (N = the VF index for `ip link set PF vf N`)
 *   <sys>/bus/pci/devices/<pf>/net/<ifname>                       the PF's netdev(s)
 *
 * Which side sees what: the hook and the NRI daemon run in the host's mount namespace, whose
 * /sys was mounted by the host's network namespace. sysfs shows a netdev's directory only to
 * mounts of the netdev's own network namespace, so there the PF's net/<name> is visible and a
 * VF moved into a container has an empty net/ (and no /sys/class/net/<vf> entry). The VF's
 * PCI address therefore comes from `ip -details link show` run inside the container's
 * namespace (parentdev, iproute2 >= 5.14 with kernel >= 5.14), and the PCI tree above it from
 * the host's /sys, which is not namespaced.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { basename, join } from 'node:path';

export const SYSFS_ROOT = '/sys';

export interface PfOfVf {
  vfPci: string;
  pfPci: string;
  /** the PF's netdev name, in the host's namespace */
  pf: string;
  vf: number;
}

export type VfLookup = { ok: true; value: PfOfVf } | { ok: false; reason: string };

const pciDir = (sys: string, addr: string): string => join(sys, 'bus/pci/devices', addr);

/** undefined: the PCI device is not a VF (no physfn: a PF or a plain NIC) */
export function findPf(sys: string, vfPci: string): VfLookup | undefined {
  const dir = pciDir(sys, vfPci);
  const physfn = readlinkOr(join(dir, 'physfn'));
  if (physfn === undefined) {
    return entries(dir) === undefined ? { ok: false, reason: `no PCI device ${vfPci} in ${join(sys, 'bus/pci/devices')}` } : undefined;
  }
  const pfPci = basename(physfn);
  const pfDir = pciDir(sys, pfPci);
  const vf = (entries(pfDir) ?? [])
    .filter((e) => /^virtfn\d+$/.test(e))
    .find((e) => basename(readlinkOr(join(pfDir, e)) ?? '') === vfPci);
  if (vf === undefined) return { ok: false, reason: `PF ${pfPci} has no virtfnN link to VF ${vfPci}` };
  const pf = pfNetdev(pfDir);
  if (!pf.ok) return { ok: false, reason: `PF ${pfPci}: ${pf.reason}` };
  return { ok: true, value: { vfPci, pfPci, pf: pf.name, vf: Number(vf.slice('virtfn'.length)) } };
}

/**
 * The PF's netdev. In switchdev mode the VF representors hang under the PF's PCI device too
 * (phys_port_name pf0vf3 and the like): they are skipped.
 */
function pfNetdev(pfDir: string): { ok: true; name: string } | { ok: false; reason: string } {
  const names = (entries(join(pfDir, 'net')) ?? []).filter((n) => !/^pf\d+vf\d+$/.test(readOr(join(pfDir, 'net', n, 'phys_port_name'))));
  if (names.length === 1 && names[0] !== undefined) return { ok: true, name: names[0] };
  if (names.length === 0) return { ok: false, reason: 'no netdev in the host namespace (net/ is empty: driver unbound, or the PF is in another namespace)' };
  return { ok: false, reason: `several netdevs (${names.join(', ')}): cannot tell which one owns the VFs` };
}

/** The PCI address behind a netdev this process's /sys can see (/sys/class/net/<dev>/device). */
export function pciOfNetdev(sys: string, dev: string): string | undefined {
  const link = readlinkOr(join(sys, 'class/net', dev, 'device'));
  return link === undefined ? undefined : basename(link);
}

/**
 * Where a VF is now, seen from the host's /sys: 'gone' (VFs disabled, device removed), 'host'
 * (its netdev is back in the host's namespace: the container's namespace was destroyed) or
 * 'away' (in some other namespace, e.g. still in the container's).
 */
export function vfWhereabouts(sys: string, vfPci: string): 'gone' | 'host' | 'away' {
  const dir = pciDir(sys, vfPci);
  if (entries(dir) === undefined) return 'gone';
  return (entries(join(dir, 'net'))?.length ?? 0) > 0 ? 'host' : 'away';
}

function readlinkOr(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}

function entries(path: string): string[] | undefined {
  try {
    return readdirSync(path).sort();
  } catch {
    return undefined;
  }
}

function readOr(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return '';
  }
}
