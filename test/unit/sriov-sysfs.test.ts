/** src/kernel/sriov.ts over a fake sysfs tree (test/support/fake-sysfs.ts: where the layout comes from). */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { findPf, pciOfNetdev, vfWhereabouts } from '../../src/kernel/sriov.js';
import { makeFakeSysfs, NIC_PCI, PF_NAME, PF_PCI, VF_PCIS, type FakeSysfs } from '../support/fake-sysfs.js';

let sys: FakeSysfs | undefined;
afterEach(() => sys?.cleanup());

describe('findPf', () => {
  it('VF -> PF PCI address, PF netdev, VF index from the virtfnN link', () => {
    sys = makeFakeSysfs();
    expect(findPf(sys.root, '0000:3b:02.1')).toEqual({ ok: true, value: { vfPci: '0000:3b:02.1', pfPci: PF_PCI, pf: PF_NAME, vf: 1 } });
    expect(findPf(sys.root, VF_PCIS[0] as string)).toMatchObject({ ok: true, value: { vf: 0 } });
  });

  it('a PF or a plain NIC (no physfn) is not a VF', () => {
    sys = makeFakeSysfs();
    expect(findPf(sys.root, NIC_PCI)).toBeUndefined();
    expect(findPf(sys.root, PF_PCI)).toBeUndefined();
  });

  it('an unknown PCI address -> the reason', () => {
    sys = makeFakeSysfs();
    expect(findPf(sys.root, '0000:99:00.0')).toEqual({ ok: false, reason: `no PCI device 0000:99:00.0 in ${sys.root}/bus/pci/devices` });
  });

  it('a PF without a netdev in this namespace -> the reason', () => {
    sys = makeFakeSysfs({ pfNetdevs: [] });
    expect(findPf(sys.root, '0000:3b:02.1')).toEqual({ ok: false, reason: expect.stringMatching(/^PF 0000:3b:00.0: no netdev in the host namespace/) });
  });

  it('switchdev representors under the PF are skipped', () => {
    sys = makeFakeSysfs({ pfNetdevs: [PF_NAME, 'pf0vf0', 'pf0vf1'] });
    expect(findPf(sys.root, '0000:3b:02.1')).toMatchObject({ ok: true, value: { pf: PF_NAME } });
  });

  it('two PF netdevs that are not representors -> refused with both names', () => {
    sys = makeFakeSysfs({ pfNetdevs: ['ens1f0', 'ens1f0d1'] });
    expect(findPf(sys.root, '0000:3b:02.1')).toEqual({ ok: false, reason: 'PF 0000:3b:00.0: several netdevs (ens1f0, ens1f0d1): cannot tell which one owns the VFs' });
  });

  it('a physfn whose PF has no virtfn link back -> the reason', () => {
    sys = makeFakeSysfs();
    rmSync(join(sys.dev(PF_PCI), 'virtfn1'));
    expect(findPf(sys.root, '0000:3b:02.1')).toEqual({ ok: false, reason: 'PF 0000:3b:00.0 has no virtfnN link to VF 0000:3b:02.1' });
  });
});

describe('vfWhereabouts and pciOfNetdev', () => {
  it('away while in a container, host once its netdev is back, gone once the VF is', () => {
    sys = makeFakeSysfs();
    expect(vfWhereabouts(sys.root, '0000:3b:02.1')).toBe('away');
    sys.vfBackInHost('0000:3b:02.1', 'enp59s0f0v1');
    expect(vfWhereabouts(sys.root, '0000:3b:02.1')).toBe('host');
    expect(vfWhereabouts(sys.root, '0000:3b:09.0')).toBe('gone');
  });

  it('reads /sys/class/net/<dev>/device when the netdev is visible', () => {
    sys = makeFakeSysfs();
    expect(pciOfNetdev(sys.root, PF_NAME)).toBe(PF_PCI);
    expect(pciOfNetdev(sys.root, 'net1')).toBeUndefined(); // a VF in a container: not in the host's class/net
  });
});
