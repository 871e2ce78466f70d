/**
 * A fake /sys with the SR-IOV layout of a real kernel's PCI tree, built in a temp dir
 * (/tmp/nqt-sysfs-*). The links are the ones drivers/pci/iov.c (pci_iov_sysfs_link) and the
 * driver core make, as documented in Documentation/ABI/testing/sysfs-bus-pci:
 *
 *   bus/pci/devices/<addr>  -> ../../../devices/pci0000:3a/0000:3a:00.0/<addr>
 *   <pf>/virtfnN            -> ../<vf>
 *   <vf>/physfn             -> ../<pf>
 *   <pf>/net/<ifname>/        the PF's netdev (empty net/ for a VF moved into a container)
 *
 * Addresses and names follow the recorded PF (ip-link-sriov-pf-*.recorded-upstream.txt:
 * enp59s0f0np0 = bus 0x3b) and the hand-written VF namespace (net1 on 0000:3b:02.1).
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const PF_PCI = '0000:3b:00.0';
export const PF_NAME = 'enp59s0f0np0';
export const VF_PCIS = ['0000:3b:02.0', '0000:3b:02.1'];
export const NIC_PCI = '0000:3a:00.3'; // a plain NIC function: no physfn

const BRIDGE = 'devices/pci0000:3a/0000:3a:00.0';

export interface FakeSysfs {
  root: string;
  /** the device dir (the real path behind bus/pci/devices/<addr>) */
  dev(addr: string): string;
  /** the VF's netdev shows up in the host's sysfs: its container namespace is gone */
  vfBackInHost(addr: string, ifname: string): void;
  cleanup(): void;
}

export function makeFakeSysfs(opts: { pfNetdevs?: string[] } = {}): FakeSysfs {
  const root = mkdtempSync(join(tmpdir(), 'nqt-sysfs-'));
  const dev = (addr: string) => join(root, BRIDGE, addr);
  mkdirSync(join(root, 'bus/pci/devices'), { recursive: true });
  mkdirSync(join(root, 'class/net'), { recursive: true });
  for (const addr of [PF_PCI, ...VF_PCIS, NIC_PCI]) {
    mkdirSync(join(dev(addr), 'net'), { recursive: true });
    writeFileSync(join(dev(addr), 'vendor'), '0x15b3\n');
    symlinkSync(`../../../${BRIDGE}/${addr}`, join(root, 'bus/pci/devices', addr));
  }
  for (const name of opts.pfNetdevs ?? [PF_NAME]) {
    mkdirSync(join(dev(PF_PCI), 'net', name));
    writeFileSync(join(dev(PF_PCI), 'net', name, 'phys_port_name'), name === PF_NAME ? 'p0\n' : `${name}\n`);
    symlinkSync(`../../../${PF_PCI}`, join(dev(PF_PCI), 'net', name, 'device'));
    symlinkSync(`../../${BRIDGE}/${PF_PCI}/net/${name}`, join(root, 'class/net', name));
  }
  writeFileSync(join(dev(PF_PCI), 'sriov_numvfs'), `${VF_PCIS.length}\n`);
  VF_PCIS.forEach((vf, i) => {
    symlinkSync(`../${vf}`, join(dev(PF_PCI), `virtfn${i}`));
    symlinkSync(`../${PF_PCI}`, join(dev(vf), 'physfn'));
  });
  return {
    root,
    dev,
    vfBackInHost(addr, ifname) {
      mkdirSync(join(dev(addr), 'net', ifname));
    },
    cleanup() {
      rmSync(root, { recursive: true, force: true });
    },
  };
}
