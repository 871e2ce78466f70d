/**
 * SR-IOV VF egress in hardware, pure part: the PF's VF rates parsed from `ip -json link show`
 * (the JSON iproute2 prints for the state recorded as text upstream: fixtures README.txt),
 * what to set on the PF, what to remember, what to restore.
 */
import { describe, expect, it } from 'vitest';
import { MINIMAL_CAPS } from '../../src/domain/link.js';
import type { QosSpec } from '../../src/domain/spec.js';
import { planApply } from '../../src/plan/apply-plan.js';
import { parseIpLinks } from '../../src/plan/parse-ip.js';
import { parseVfRates } from '../../src/plan/parse-vf.js';
import { renderTc } from '../../src/plan/render.js';
import { hardwareMbit, planVfEgress, planVfRestore, renderVfOp, type VfEgressInput, type VfLink, type VfState } from '../../src/plan/vf-egress.js';
import { fixture, handmade } from '../support/kernel-fixtures.js';

const PF = 'enp59s0f0np0';

describe('parseVfRates', () => {
  it('reads rate.max_tx per VF from the PF JSON', () => {
    expect(parseVfRates(handmade('ip-link-sriov-pf-capped.handmade.json'), PF)).toEqual([
      { vf: 0, maxTxMbit: 5000, minTxMbit: 0 },
      { vf: 1, maxTxMbit: 0, minTxMbit: 0 },
    ]);
  });

  it('carries the same caps as the recorded text output it was written from', () => {
    const text = fixture('ip-link-sriov-pf-capped.recorded-upstream.txt');
    const fromText = [...text.matchAll(/^\s+vf (\d+) .*?(?:max_tx_rate (\d+)Mbps|$)/gm)].map((m) => ({ vf: Number(m[1]), max: Number(m[2] ?? 0) }));
    expect(fromText).toEqual([
      { vf: 0, max: 5000 },
      { vf: 1, max: 0 },
    ]);
    expect(parseVfRates(handmade('ip-link-sriov-pf-capped.handmade.json'), PF).map((r) => ({ vf: r.vf, max: r.maxTxMbit }))).toEqual(fromText);
  });

  it('older kernels: only tx_rate (IFLA_VF_TX_RATE) -> taken as max', () => {
    expect(parseVfRates('[{"ifname":"p","vfinfo_list":[{"vf":3,"tx_rate":100}]}]', 'p')).toEqual([{ vf: 3, maxTxMbit: 100, minTxMbit: 0 }]);
  });

  it('a PF without VFs -> []; not JSON -> KERNEL error naming the PF', () => {
    expect(parseVfRates('[{"ifname":"p"}]', 'p')).toEqual([]);
    expect(() => parseVfRates('Device "p" does not exist.', 'p')).toThrow(/ip -json link show dev p printed something that is not JSON/);
  });
});

describe('hardwareMbit: whole Mbit/s, rounded up, at least 1', () => {
  it.each([
    [10e6, 10],
    [10_000_001, 11],
    [25.5e6, 26],
    [1e3, 1],
    [999_999, 1],
    [1e9, 1000],
    [2 ** 30, 1074],
  ])('%d bit/s -> %d', (bps, mbit) => expect(hardwareMbit(bps)).toBe(mbit));
});

const links = parseIpLinks(handmade('ip-link-sriov-vf.handmade.json'));
const VF1: VfLink = { dev: 'net1', vfPci: '0000:3b:02.1', pfPci: '0000:3b:00.0', pf: PF, vf: 1, maxTxMbit: 0 };
const input = (over: Partial<VfEgressInput>): VfEgressInput => ({
  mode: 'hardware',
  spec: { egress: { rateBps: 10e6 }, ingress: { rateBps: 20e6 } },
  links,
  vfs: [VF1],
  unresolved: [],
  states: [],
  ...over,
});
const STATE: VfState = { vfPci: '0000:3b:02.1', pfPci: '0000:3b:00.0', pf: PF, vf: 1, previousMbit: 0, setMbit: 10 };

describe('planVfEgress', () => {
  it('hardware: sets the cap, remembers the previous value, takes the VF out of the egress HTB', () => {
    const p = planVfEgress(input({}));
    expect(p.ops.map(renderVfOp)).toEqual([['link', 'set', 'dev', PF, 'vf', '1', 'max_tx_rate', '10']]);
    expect(p.save).toEqual([STATE]);
    expect(p.fresh).toEqual([STATE.vfPci]);
    expect(p.hardwareOnly).toEqual(['net1']);
    expect(p.drop).toEqual([]);
    expect(p.warnings).toEqual([]);
  });

  it('both: the same PF op, and the HTB stays', () => {
    const p = planVfEgress(input({ mode: 'both' }));
    expect(p.ops).toEqual([{ pf: PF, vf: 1, maxTxMbit: 10 }]);
    expect(p.hardwareOnly).toEqual([]);
  });

  it('re-apply with the cap in place: nothing to do', () => {
    const p = planVfEgress(input({ vfs: [{ ...VF1, maxTxMbit: 10 }], states: [STATE] }));
    expect(p).toEqual({ ops: [], save: [], drop: [], hardwareOnly: ['net1'], warnings: [] });
  });

  it('a new rate keeps the original previous value', () => {
    const p = planVfEgress(input({ spec: { egress: { rateBps: 25.5e6 } }, vfs: [{ ...VF1, maxTxMbit: 10 }], states: [STATE] }));
    expect(p.ops).toEqual([{ pf: PF, vf: 1, maxTxMbit: 26 }]);
    expect(p.save).toEqual([{ ...STATE, setMbit: 26 }]);
    expect(p.fresh).toBeUndefined();
  });

  it('a VF the CNI plugin had capped at 5000: that is what gets remembered', () => {
    const p = planVfEgress(input({ vfs: [{ ...VF1, vf: 0, vfPci: '0000:3b:02.0', maxTxMbit: 5000 }] }));
    expect(p.save).toEqual([{ ...STATE, vf: 0, vfPci: '0000:3b:02.0', previousMbit: 5000 }]);
  });

  it('egress gone from the spec: restore and forget', () => {
    const p = planVfEgress(input({ spec: { ingress: { rateBps: 20e6 } }, vfs: [{ ...VF1, maxTxMbit: 10 }], states: [STATE] }));
    expect(p.ops).toEqual([{ pf: PF, vf: 1, maxTxMbit: 0 }]);
    expect(p.drop).toEqual([STATE]);
    expect(p.hardwareOnly).toEqual([]);
  });

  it('software mode with a state left from hardware mode: restore', () => {
    const p = planVfEgress(input({ mode: 'software', vfs: [{ ...VF1, maxTxMbit: 10 }], states: [STATE] }));
    expect(p.ops).toEqual([{ pf: PF, vf: 1, maxTxMbit: 0 }]);
    expect(p.drop).toEqual([STATE]);
  });

  it('software mode, nothing remembered: nothing', () => {
    expect(planVfEgress(input({ mode: 'software' }))).toEqual({ ops: [], save: [], drop: [], hardwareOnly: [], warnings: [] });
  });

  it('below 1 Mbit/s: capped at 1 with a warning', () => {
    const p = planVfEgress(input({ spec: { egress: { rateBps: 500e3 } } }));
    expect(p.ops).toEqual([{ pf: PF, vf: 1, maxTxMbit: 1 }]);
    expect(p.warnings).toEqual(['net1: egress 500000 bit/s is below the 1 Mbit/s a PF can set; its hardware cap is 1 Mbit/s']);
  });

  it('hardware with classes: the software tree is kept (both), with a warning', () => {
    const spec: QosSpec = { egress: { rateBps: 10e6, classes: [{ name: 'a', rateBps: 1e6, match: { cidrs: ['10.0.0.0/8'] } }] } };
    const p = planVfEgress(input({ spec }));
    expect(p.hardwareOnly).toEqual([]);
    expect(p.ops).toHaveLength(1);
    expect(p.warnings[0]).toMatch(/net1: classes and unshaped subnets need the software tree/);
  });

  it('a per-interface egress override is the one capped', () => {
    const p = planVfEgress(input({ spec: { egress: { rateBps: 10e6 }, perInterface: { net1: { egress: { rateBps: 40e6 } } } } }));
    expect(p.ops).toEqual([{ pf: PF, vf: 1, maxTxMbit: 40 }]);
  });

  it('a VF not selected by netqos.io/interfaces is not capped (and restored if it was)', () => {
    const p = planVfEgress(input({ spec: { egress: { rateBps: 10e6 }, interfaces: ['eth0'] }, vfs: [{ ...VF1, maxTxMbit: 10 }], states: [STATE] }));
    expect(p.ops).toEqual([{ pf: PF, vf: 1, maxTxMbit: 0 }]);
    expect(p.hardwareOnly).toEqual([]);
  });

  it('a VF whose PF was not found: software, with the reason', () => {
    const p = planVfEgress(input({ vfs: [], unresolved: [{ dev: 'net1', reason: 'PF 0000:3b:00.0: no netdev' }] }));
    expect(p).toEqual({ ops: [], save: [], drop: [], hardwareOnly: [], warnings: ['net1: egress shaped in software, not by the PF: PF 0000:3b:00.0: no netdev'] });
  });

  it('states of other containers\' VFs are left alone', () => {
    const other = { ...STATE, vfPci: '0000:3b:02.7', vf: 7 };
    expect(planVfEgress(input({ states: [other] })).drop).toEqual([]);
  });
});

describe('planVfRestore', () => {
  it('puts the previous value back when the PF still has ours', () => {
    expect(planVfRestore([STATE], new Map([[STATE.vfPci, 10]]))).toMatchObject({ ops: [{ pf: PF, vf: 1, maxTxMbit: 0 }], drop: [STATE] });
  });

  it('current unknown (PF unreadable): restores anyway', () => {
    expect(planVfRestore([STATE]).ops).toEqual([{ pf: PF, vf: 1, maxTxMbit: 0 }]);
  });

  it('already back at the previous value: just forgets', () => {
    expect(planVfRestore([STATE], new Map([[STATE.vfPci, 0]]))).toMatchObject({ ops: [], drop: [STATE] });
  });

  it('changed by someone else since: left as it is, forgotten, warned', () => {
    const p = planVfRestore([STATE], new Map([[STATE.vfPci, 300]]));
    expect(p.ops).toEqual([]);
    expect(p.drop).toEqual([STATE]);
    expect(p.warnings).toEqual([`${PF} vf 1: max_tx_rate is 300, not the 10 netqos set; left as it is (netqos would have restored 0)`]);
  });
});

describe('planApply with egress in hardware', () => {
  it('the VF gets only the ingress ifb; the veth beside it keeps its egress HTB', () => {
    const p = planApply({ spec: { egress: { rateBps: 10e6 }, ingress: { rateBps: 20e6 } }, observed: { links, qdiscs: [] }, caps: MINIMAL_CAPS, egressInHardware: ['net1'] });
    const tc = renderTc(p.tc);
    expect(tc).not.toMatch(/dev net1 root/);
    expect(tc).toMatch(/^qdisc replace dev eth0 root handle 4e51: htb default 10$/m);
    expect(tc).toMatch(/^filter add dev net1 parent ffff: protocol all prio 49 u32 match u32 0 0 action mirred egress redirect dev nqi27$/m);
    expect(p.shaped.map((s) => [s.dev, s.direction])).toEqual([
      ['eth0', 'egress'],
      ['eth0', 'ingress'],
      ['net1', 'ingress'],
    ]);
    expect(p.ip.map((o) => o.name)).not.toContain('net1'); // no gso cap: no HTB on it
  });

  it('our old egress HTB on the VF is removed when egress moves to hardware', () => {
    const qdiscs = [{ dev: 'net1', kind: 'htb', handle: '4e51:', parent: 'root' }];
    const p = planApply({ spec: { egress: { rateBps: 10e6 } }, observed: { links, qdiscs }, caps: MINIMAL_CAPS, egressInHardware: ['net1'] });
    expect(renderTc(p.tc)).toMatch(/^qdisc del dev net1 root$/m);
  });
});
