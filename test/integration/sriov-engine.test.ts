/**
 * The engine's SR-IOV path end to end, with no VF hardware (there is none here): the
 * container's namespace is a real empty one (nqt-vf-*), but the engine is handed fake ip/tc
 * sessions that answer `link show` with the hand-written VF pod (ip-link-sriov-vf.handmade.json:
 * veth eth0 + VF net1 on 0000:3b:02.1), a fake /sys (test/support/fake-sysfs.ts) and a fake
 * host `ip` for the PF that starts from the recorded PF state (vf 0 capped at 5000, vf 1 not:
 * ip-link-sriov-pf-capped.*) and records every `ip link set ... vf` instead of running it.
 * No `ip link set ... vf` ever reaches a real device.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, expect } from 'vitest';
import type { VfEgress } from '../../src/domain/config.js';
import { MINIMAL_CAPS } from '../../src/domain/link.js';
import type { QosSpec } from '../../src/domain/spec.js';
import { applyQos, releaseOrphanVfs, removeQos, type EngineOptions } from '../../src/engine.js';
import type { Session } from '../../src/kernel/runner.js';
import type { NetnsTools } from '../../src/kernel/tools-session.js';
import type { HostIp } from '../../src/kernel/vf-egress.js';
import { cleanupAll, makeNetns, nsRef, requireRoot } from '../support/fixtures.js';
import { makeFakeSysfs, PF_NAME, type FakeSysfs } from '../support/fake-sysfs.js';

const root = requireRoot(['ip', 'tc', 'nsenter']);
const fixture = (name: string): string => readFileSync(new URL(`../fixtures/kernel/${name}`, import.meta.url), 'utf8');
const stdoutOf = (name: string): unknown[] => (JSON.parse(fixture(name)) as { stdout: unknown[] }).stdout;

/** ip/tc sessions that answer discovery from recordings and keep what the plan wrote */
function fakeTools(linkShow: string, written: { ip: string[]; tc: string[] }): NetnsTools {
  const session = (tool: 'ip' | 'tc'): Session => ({
    pid: undefined,
    ask: async (commands) => commands.map((c) => (c === 'link show' ? linkShow : '[]')),
    send: (input) => void written[tool].push(input),
    finish: async (input) => {
      written[tool].push(input);
      return '';
    },
    close: () => undefined,
    end: async (input = '') => {
      written[tool].push(input);
      return { code: 0, stdout: '', stderr: '' };
    },
  });
  return { ip: session('ip'), tc: session('tc'), links: async () => linkShow };
}

/** the PF in the host's namespace: `ip -json link show dev PF` from the recording, sets recorded */
function fakePf() {
  const pf = structuredClone(stdoutOf('ip-link-sriov-pf-capped.handmade.json')[0]) as {
    ifname: string;
    vfinfo_list: { vf: number; tx_rate?: number; rate: { max_tx: number; min_tx: number } }[];
  };
  const sets: string[] = [];
  const shows: string[] = [];
  const ip: HostIp = async (args) => {
    const a = args.join(' ');
    let m = /^-json link show dev (\S+)$/.exec(a);
    if (m) {
      shows.push(m[1] as string);
      if (m[1] !== pf.ifname) throw new Error(`Device "${m[1]}" does not exist.`);
      return JSON.stringify([pf]);
    }
    m = /^link set dev (\S+) vf (\d+) max_tx_rate (\d+)$/.exec(a);
    if (!m || m[1] !== pf.ifname) throw new Error(`unexpected ip ${a}`);
    const vf = pf.vfinfo_list.find((v) => v.vf === Number(m![2]));
    if (!vf) throw new Error('RTNETLINK answers: Invalid argument');
    vf.rate.max_tx = Number(m[3]);
    if (vf.rate.max_tx === 0) delete vf.tx_rate;
    else vf.tx_rate = vf.rate.max_tx;
    sets.push(`vf ${m[2]} max_tx_rate ${m[3]}`);
    return '';
  };
  const maxOf = (n: number) => pf.vfinfo_list.find((v) => v.vf === n)?.rate.max_tx;
  return { ip, sets, shows, maxOf, pf };
}

const VF_POD = JSON.stringify(stdoutOf('ip-link-sriov-vf.handmade.json'));
const BOTH: QosSpec = { egress: { rateBps: 10e6 }, ingress: { rateBps: 20e6 } };

root.describe('engine: SR-IOV VF egress in hardware (fake PF, fake sysfs)', () => {
  let ns: string;
  let sys: FakeSysfs;
  let stateDir: string;
  let pf: ReturnType<typeof fakePf>;
  let written: { ip: string[]; tc: string[] };

  beforeAll(async () => {
    ns = await makeNetns('vf');
  });
  afterAll(cleanupAll);
  beforeEach(() => {
    sys = makeFakeSysfs();
    stateDir = mkdtempSync(join(tmpdir(), 'nqt-sriov-state-'));
    pf = fakePf();
  });
  afterEach(() => {
    sys.cleanup();
    rmSync(stateDir, { recursive: true, force: true });
  });

  const opts = (mode: VfEgress, linkShow = VF_POD): EngineOptions => {
    written = { ip: [], tc: [] };
    return { caps: MINIMAL_CAPS, tools: fakeTools(linkShow, written), sriov: { mode, stateDir, sysRoot: sys.root, ip: pf.ip } };
  };
  const tcText = () => written.tc.join('');
  const state = () => JSON.parse(readFileSync(join(stateDir, '0000:3b:02.1.json'), 'utf8')) as Record<string, unknown>;
  const stateFiles = () => readdirSync(stateDir);

  root.it('hardware: the PF caps vf 1 at ceil(10M) = 10 Mbit, remembers 0, no egress HTB on the VF', async () => {
    const res = await applyQos(nsRef(ns), BOTH, opts('hardware'));
    expect(pf.sets).toEqual(['vf 1 max_tx_rate 10']);
    expect(pf.maxOf(1)).toBe(10);
    expect(pf.maxOf(0)).toBe(5000); // the other VF untouched
    expect(res.vfRates).toEqual([{ pf: PF_NAME, vf: 1, maxTxMbit: 10 }]);
    expect(state()).toEqual({ vfPci: '0000:3b:02.1', pfPci: '0000:3b:00.0', pf: PF_NAME, vf: 1, previousMbit: 0, setMbit: 10 });
    expect(tcText()).not.toMatch(/dev net1 root/);
    expect(tcText()).toMatch(/^filter add dev net1 parent ffff: .* redirect dev nqi27$/m); // ingress stays software
    expect(tcText()).toMatch(/^qdisc replace dev eth0 root handle 4e51: htb default 10$/m); // the veth keeps its HTB
    expect(res.shaped.filter((s) => s.dev === 'net1').map((s) => s.direction)).toEqual(['ingress']);
  });

  root.it('re-apply is idempotent: no second set, the state keeps the original previous value', async () => {
    await applyQos(nsRef(ns), BOTH, opts('hardware'));
    const before = state();
    const res = await applyQos(nsRef(ns), BOTH, opts('hardware'));
    expect(pf.sets).toEqual(['vf 1 max_tx_rate 10']);
    expect(res.vfRates).toEqual([]);
    expect(state()).toEqual(before);
  });

  root.it('a new rate (25.5M) becomes 26 Mbit; the previous value stays 0', async () => {
    await applyQos(nsRef(ns), BOTH, opts('hardware'));
    await applyQos(nsRef(ns), { ...BOTH, egress: { rateBps: 25.5e6 } }, opts('hardware'));
    expect(pf.sets).toEqual(['vf 1 max_tx_rate 10', 'vf 1 max_tx_rate 26']);
    expect(state()).toMatchObject({ previousMbit: 0, setMbit: 26 });
  });

  root.it('removeQos restores the previous value and forgets it', async () => {
    await applyQos(nsRef(ns), BOTH, opts('hardware'));
    const res = await removeQos(nsRef(ns), opts('hardware'));
    expect(pf.sets).toEqual(['vf 1 max_tx_rate 10', 'vf 1 max_tx_rate 0']);
    expect(res.vfRates).toEqual([{ pf: PF_NAME, vf: 1, maxTxMbit: 0 }]);
    expect(pf.maxOf(1)).toBe(0);
    expect(stateFiles()).toEqual([]);
  });

  root.it('egress dropped from the spec: restored on the next apply', async () => {
    await applyQos(nsRef(ns), BOTH, opts('hardware'));
    await applyQos(nsRef(ns), { ingress: { rateBps: 20e6 } }, opts('hardware'));
    expect(pf.sets).toEqual(['vf 1 max_tx_rate 10', 'vf 1 max_tx_rate 0']);
    expect(stateFiles()).toEqual([]);
  });

  root.it('both: the PF cap and the HTB on the VF', async () => {
    await applyQos(nsRef(ns), BOTH, opts('both'));
    expect(pf.sets).toEqual(['vf 1 max_tx_rate 10']);
    expect(tcText()).toMatch(/^qdisc replace dev net1 root handle 4e51: htb default 10$/m);
  });

  root.it('software (the default): the PF is never asked, HTB on the VF', async () => {
    await applyQos(nsRef(ns), BOTH, opts('software'));
    expect(pf.shows).toEqual([]);
    expect(pf.sets).toEqual([]);
    expect(tcText()).toMatch(/^qdisc replace dev net1 root handle 4e51: htb default 10$/m);
    expect(stateFiles()).toEqual([]);
  });

  root.it('switching from hardware to software restores the PF on the next apply', async () => {
    await applyQos(nsRef(ns), BOTH, opts('hardware'));
    await applyQos(nsRef(ns), BOTH, opts('software'));
    expect(pf.sets).toEqual(['vf 1 max_tx_rate 10', 'vf 1 max_tx_rate 0']);
    expect(tcText()).toMatch(/^qdisc replace dev net1 root handle 4e51: htb default 10$/m);
  });

  root.it('a VF whose PF has no netdev: software egress and a warning, nothing set', async () => {
    rmSync(join(sys.dev('0000:3b:00.0'), 'net', PF_NAME), { recursive: true });
    const res = await applyQos(nsRef(ns), BOTH, opts('hardware'));
    expect(pf.sets).toEqual([]);
    expect(res.warnings).toEqual([expect.stringMatching(/^net1: egress shaped in software, not by the PF: PF 0000:3b:00.0: no netdev/)]);
    expect(tcText()).toMatch(/^qdisc replace dev net1 root handle 4e51: htb default 10$/m);
  });

  root.it('a PF that ip cannot show: software egress and the error as the warning', async () => {
    rmSync(join(sys.dev('0000:3b:00.0'), 'net', PF_NAME), { recursive: true });
    sys.vfBackInHost('0000:3b:00.0', 'enp59s0f0np9'); // the PF's netdev under another name than ip knows
    const res = await applyQos(nsRef(ns), BOTH, opts('hardware'));
    expect(pf.sets).toEqual([]);
    expect(res.warnings).toEqual(['net1: egress shaped in software, not by the PF: Device "enp59s0f0np9" does not exist.']);
  });

  root.it('below 1 Mbit/s: capped at 1 Mbit with a warning', async () => {
    const res = await applyQos(nsRef(ns), { egress: { rateBps: 300e3 } }, opts('hardware'));
    expect(pf.sets).toEqual(['vf 1 max_tx_rate 1']);
    expect(res.warnings).toEqual(['net1: egress 300000 bit/s is below the 1 Mbit/s a PF can set; its hardware cap is 1 Mbit/s']);
  });

  root.it('container gone (its VF back in the host namespace): releaseOrphanVfs restores', async () => {
    await applyQos(nsRef(ns), BOTH, opts('hardware'));
    expect(await releaseOrphanVfs(opts('hardware'))).toEqual([]); // still in the container: kept
    sys.vfBackInHost('0000:3b:02.1', 'enp59s0f0v1');
    expect(await releaseOrphanVfs(opts('hardware'))).toEqual([{ pf: PF_NAME, vf: 1, maxTxMbit: 0 }]);
    expect(pf.sets).toEqual(['vf 1 max_tx_rate 10', 'vf 1 max_tx_rate 0']);
    expect(stateFiles()).toEqual([]);
  });

  root.it('removeQos of a namespace that is gone restores orphans too', async () => {
    await applyQos(nsRef(ns), BOTH, opts('hardware'));
    sys.vfBackInHost('0000:3b:02.1', 'enp59s0f0v1');
    const res = await removeQos({ path: '/run/netns/nqt-vf-does-not-exist' }, opts('hardware'));
    expect(res).toMatchObject({ present: false, vfRates: [{ pf: PF_NAME, vf: 1, maxTxMbit: 0 }] });
  });

  root.it('a cap changed by someone else after us is left as it is on removal', async () => {
    await applyQos(nsRef(ns), BOTH, opts('hardware'));
    await pf.ip(['link', 'set', 'dev', PF_NAME, 'vf', '1', 'max_tx_rate', '300']);
    const res = await removeQos(nsRef(ns), opts('hardware'));
    expect(pf.maxOf(1)).toBe(300);
    expect(res.vfRates).toEqual([]);
    expect(existsSync(join(stateDir, '0000:3b:02.1.json'))).toBe(false);
  });

  root.it('a failing set fails the apply and leaves nothing of ours (software rolled back, state restored)', async () => {
    const broken: HostIp = async (args) => {
      if (args[1] === 'set' && args.at(-1) !== '0') throw new Error('RTNETLINK answers: Operation not supported');
      return pf.ip(args);
    };
    const o = opts('hardware');
    await expect(applyQos(nsRef(ns), BOTH, { ...o, sriov: { ...o.sriov!, ip: broken } })).rejects.toThrow(
      `cannot set max_tx_rate 10 on ${PF_NAME} vf 1: RTNETLINK answers: Operation not supported`,
    );
    expect(pf.maxOf(1)).toBe(0);
    expect(stateFiles()).toEqual([]);
  });
});
