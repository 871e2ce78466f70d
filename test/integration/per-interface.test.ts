/**
 * Per-interface limits on the real kernel (docs/per-interface.md).
 *
 * 1. A container namespace with two veths (eth0 to one peer namespace, net1 to another), limits
 *    from annotations that differ per interface: read back with tc, then measured with both
 *    interfaces loaded at once (egress together, then ingress together), judged by qdisc byte
 *    counters at L2: each interface holds its own limit, not the other's, within ±2 %.
 * 2. Twelve veths in one namespace, several with their own limits: every one gets its own ifb
 *    nqi<ifindex>, its redirect points at that ifb, every class carries the rate meant for it;
 *    removal leaves nothing of ours.
 * 3. The built CLI's --iface-* flags do the same on the two-interface namespace.
 * 4. An override naming an interface the namespace lacks fails with its interfaces listed, and
 *    the namespace is untouched.
 */
import { afterAll, beforeAll, expect } from 'vitest';
import { parseAnnotations } from '../../src/domain/annotations.js';
import type { QosSpec } from '../../src/domain/spec.js';
import { applyQos, removeQos } from '../../src/engine.js';
import { run } from '../../src/kernel/runner.js';
import { cleanupAll, ipIn, makeNetns, nsPath, nsRef, requireRoot, snapshotNs, tcIn, vethPair, type LinkPair } from '../support/fixtures.js';
import { iperfServer, measureL2 } from '../support/traffic.js';

const root = requireRoot(['ip', 'tc', 'nsenter', 'iperf3']);
const mbit = (bps: number): string => `${(bps / 1e6).toFixed(3)} Mbit/s`;

interface IpLink {
  ifname: string;
  ifindex: number;
}
interface TcQdisc {
  kind: string;
  handle: string;
  dev: string;
}
const linksOf = async (ns: string): Promise<IpLink[]> => JSON.parse((await ipIn(ns, ['-json', 'link', 'show'])).stdout) as IpLink[];
const qdiscsOf = async (ns: string): Promise<TcQdisc[]> => JSON.parse((await tcIn(ns, ['-json', 'qdisc', 'show'])).stdout) as TcQdisc[];
const ifbsOf = async (ns: string): Promise<string[]> => (await linksOf(ns)).map((l) => l.ifname).filter((n) => /^nqi\d+$/.test(n));
/** iproute2 6.1 prints classes as text even with -json: "class htb 4e51:1 root rate 20Mbit ceil ..." */
const classRate = async (ns: string, dev: string): Promise<string | undefined> =>
  /class htb 4e51:1 .*? rate (\S+) ceil (\S+)/.exec((await tcIn(ns, ['class', 'show', 'dev', dev])).stdout)?.[1];
const redirectTarget = async (ns: string, dev: string): Promise<string | undefined> => {
  const filters = JSON.parse((await tcIn(ns, ['-json', 'filter', 'show', 'dev', dev, 'ingress'])).stdout) as {
    pref?: number;
    options?: { actions?: { to_dev?: string }[] };
  }[];
  return filters.find((f) => f.pref === 49 && f.options?.actions?.[0]?.to_dev)?.options?.actions?.[0]?.to_dev;
};
/** what tc prints for a rate in whole Mbit */
const tcRate = (bps: number): string => `${bps / 1e6}Mbit`;
const ours = (q: TcQdisc[]) => q.filter((x) => x.handle === '4e51:' || x.handle === '5010:' || x.handle === '7010:' || x.handle === '5003:' || x.kind === 'ingress' || /^nqi\d+$/.test(x.dev));

root.describe('two interfaces, each with its own limits (measured)', () => {
  let container: string;
  let eth0: LinkPair;
  let net1: LinkPair;
  const annotations = {
    'kubernetes.io/egress-bandwidth': '20M',
    'kubernetes.io/ingress-bandwidth': '30M',
    'netqos.io/net1.egress-bandwidth': '50M',
    'netqos.io/net1.ingress-bandwidth': '40M',
  };
  const want = { eth0: { egress: 20e6, ingress: 30e6 }, net1: { egress: 50e6, ingress: 40e6 } } as const;
  const ifb: Record<'eth0' | 'net1', string> = { eth0: '', net1: '' };

  beforeAll(async () => {
    container = await makeNetns('pif-c');
    const peer0 = await makeNetns('pif-p0');
    const peer1 = await makeNetns('pif-p1');
    eth0 = await vethPair(container, peer0);
    net1 = await vethPair(container, peer1, { devA: 'net1' });
  });
  afterAll(async () => {
    await cleanupAll();
  });

  root.it('applies per interface from the annotations: one ifb each, the rates read back with tc', async () => {
    const spec = parseAnnotations(annotations);
    expect(spec).not.toBeNull();
    const r = await applyQos(nsRef(container), spec!);
    const links = await linksOf(container);
    for (const dev of ['eth0', 'net1'] as const) {
      ifb[dev] = `nqi${links.find((l) => l.ifname === dev)!.ifindex}`;
      expect(await classRate(container, dev)).toBe(tcRate(want[dev].egress));
      expect(await classRate(container, ifb[dev])).toBe(tcRate(want[dev].ingress));
      expect(await redirectTarget(container, dev)).toBe(ifb[dev]);
    }
    expect((await ifbsOf(container)).sort()).toEqual([ifb.eth0, ifb.net1].sort());
    expect(r.shaped.map((s) => [s.dev, s.direction, s.rateBps])).toEqual([
      ['eth0', 'egress', 20e6],
      ['eth0', 'ingress', 30e6],
      ['net1', 'egress', 50e6],
      ['net1', 'ingress', 40e6],
    ]);    // applying the same annotations again changes nothing in the kernel
    const before = await snapshotNs(container);
    const again = await applyQos(nsRef(container), spec!);
    expect(again.plan.ip).toEqual([]);
    expect(await snapshotNs(container)).toBe(before);
  });

  for (const dir of ['egress', 'ingress'] as const) {
    root.it(`${dir}: both interfaces loaded at once, each holds its own limit (steady L2 within ±2 %)`, async () => {
      const pairs = { eth0, net1 };
      const runs = await Promise.all(
        (['eth0', 'net1'] as const).map(async (dev, i) => {
          const pair = pairs[dev];
          const server = await iperfServer(container, pair.a.ipv4, { port: 5201 + i });
          try {
            // egress: the container sends (iperf3 -R from the peer); ingress: the peer sends
            const m = await measureL2({
              sample: { ns: container, dev: dir === 'egress' ? dev : ifb[dev], qdisc: '4e51:' },
              clientNs: pair.b.ns,
              server,
              seconds: 6,
              reverse: dir === 'egress',
              limitBps: want[dev][dir],
            });
            return { dev, m };
          } finally {
            await server.stop();
          }
        }),
      );
      for (const { dev, m } of runs) {
        const why = `${dev} ${dir} limit ${mbit(want[dev][dir])}: steady ${mbit(m.l2.steady.bps)}, first second ${mbit(m.l2.firstSecond.bps)}, goodput ${mbit(m.iperf.receivedBps)}`;
        process.stdout.write(`[per-interface] ${why}\n`);
        expect(Math.abs(m.l2.steady.relError), why).toBeLessThan(0.02);
        expect(m.l2.firstSecond.relError, why).toBeLessThan(0.05);
      }
    }, 60_000);
  }

  root.it('remove leaves nothing of ours on either interface', async () => {
    await removeQos(nsRef(container));
    expect(await ifbsOf(container)).toEqual([]);
    expect(ours(await qdiscsOf(container))).toEqual([]);
  });

  root.it('the built CLI gives per-interface limits with --iface-* (dist/netqos.cjs), and removes them', async () => {
    const cli = (...args: string[]) => run(process.execPath, ['dist/netqos.cjs', ...args], { allowFail: true, timeoutMs: 30_000 });
    const r = await cli('apply', '--netns', nsPath(container), '--egress', '20M', '--iface-egress', 'net1=5M', '--iface-ingress', 'net1=7M');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(await classRate(container, 'eth0')).toBe('20Mbit');
    expect(await classRate(container, 'net1')).toBe('5Mbit');
    expect(await ifbsOf(container)).toEqual([ifb.net1]);
    expect(await classRate(container, ifb.net1)).toBe('7Mbit');
    expect((await cli('remove', '--netns', nsPath(container))).code).toBe(0);
    expect(await ifbsOf(container)).toEqual([]);
    expect(ours(await qdiscsOf(container))).toEqual([]);
  });
});

root.describe('twelve interfaces: one ifb each, the right rates, nothing left after removal', () => {
  let container: string;
  const devs = ['eth0', ...Array.from({ length: 11 }, (_, i) => `net${i + 1}`)];
  const annotations = {
    'kubernetes.io/egress-bandwidth': '10M',
    'kubernetes.io/ingress-bandwidth': '20M',
    'netqos.io/net3.egress-bandwidth': '3M',
    'netqos.io/net3.ingress-bandwidth': '4M',
    'netqos.io/net7.ingress-bandwidth': '70M',
    'netqos.io/net11.egress-bandwidth': '90M',
    'netqos.io/net11.egress-burst': '2M',
    'netqos.io/eth0.ingress-burst': '1M',
  };
  const rate = (dev: string, dir: 'egress' | 'ingress'): number =>
    ({ net3: { egress: 3e6, ingress: 4e6 }, net7: { ingress: 70e6 }, net11: { egress: 90e6 } } as Record<string, Partial<Record<string, number>>>)[dev]?.[dir] ??
    (dir === 'egress' ? 10e6 : 20e6);

  beforeAll(async () => {
    container = await makeNetns('pif-many');
    const peer = await makeNetns('pif-many-p');
    for (const [i, dev] of devs.entries()) await vethPair(container, peer, { devA: dev, devB: `p${i}` });
  });
  afterAll(async () => {
    await cleanupAll();
  });

  root.it('every interface gets its own ifb and its own rates (tc -json read-back)', async () => {
    const spec: QosSpec = parseAnnotations(annotations)!;
    await applyQos(nsRef(container), spec);
    const links = await linksOf(container);
    const ifbOf = new Map(devs.map((dev) => [dev, `nqi${links.find((l) => l.ifname === dev)!.ifindex}`]));
    expect(new Set(ifbOf.values()).size).toBe(12);
    expect((await ifbsOf(container)).sort()).toEqual([...ifbOf.values()].sort());
    const qdiscs = await qdiscsOf(container);
    for (const dev of devs) {
      const ifb = ifbOf.get(dev)!;
      expect(qdiscs.find((q) => q.dev === dev && q.handle === '4e51:')?.kind, dev).toBe('htb');
      expect(qdiscs.find((q) => q.dev === ifb && q.handle === '4e51:')?.kind, ifb).toBe('htb');
      expect(await redirectTarget(container, dev), dev).toBe(ifb);
      expect([dev, await classRate(container, dev)]).toEqual([dev, tcRate(rate(dev, 'egress'))]);
      expect([ifb, await classRate(container, ifb)]).toEqual([ifb, tcRate(rate(dev, 'ingress'))]);
    }
    // the bursts (tc prints them rounded to its time ticks, within 0.1 %): net11's own 2M bits =
    // 250000 bytes where its default would be 10 ms of 90M = 112500; eth0's ingress 1M bits =
    // 125000 bytes on its ifb where the default is 25000
    const burstOf = async (dev: string) => Number(/class htb 4e51:1 root .*? burst (\d+)b /.exec((await tcIn(container, ['class', 'show', 'dev', dev])).stdout)?.[1]);
    expect(Math.abs((await burstOf('net11')) / 250_000 - 1)).toBeLessThan(0.001);
    expect(Math.abs((await burstOf(ifbOf.get('eth0')!)) / 125_000 - 1)).toBeLessThan(0.001);
    expect(Math.abs((await burstOf('net10')) / 12_500 - 1)).toBeLessThan(0.001); // no burst override: derived
  }, 60_000);

  root.it('removal leaves no ifb, no qdisc and no filter of ours on any of them', async () => {
    const r = await removeQos(nsRef(container));
    expect(r.removed).toBeGreaterThan(24);
    expect(await ifbsOf(container)).toEqual([]);
    expect(ours(await qdiscsOf(container))).toEqual([]);
    for (const dev of devs) expect(await redirectTarget(container, dev)).toBeUndefined();
  }, 60_000);

  root.it('an override for an interface the namespace lacks fails with its interfaces, and changes nothing', async () => {
    const before = await snapshotNs(container);
    const spec = parseAnnotations({ 'kubernetes.io/egress-bandwidth': '10M', 'netqos.io/net12.egress-bandwidth': '5M' })!;
    await expect(applyQos(nsRef(container), spec)).rejects.toThrow(
      `the per-interface limit netqos.io/net12.* names net12, which the container does not have; its interfaces are: ${devs.join(', ')}`,
    );
    expect(await snapshotNs(container)).toBe(before);
  });
});
