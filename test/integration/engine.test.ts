/**
 * The engine on the real kernel: namespaces joined by veth and by macvlan on a veth parent.
 * Applies, reads back with tc -json, measures with iperf3 at 10M and 1G in both directions
 * (steady L2 from qdisc byte counters within ±2 %, first second within +5 %), and checks
 * idempotence, in-place updates, removal, the host refusal and untouched namespaces on bad input.
 */
import { afterAll, beforeAll, expect } from 'vitest';
import { parseAnnotations } from '../../src/domain/annotations.js';
import { applyQos, removeQos } from '../../src/engine.js';
import { readFileSync } from 'node:fs';
import { cleanupAll, ifindexIn, ipIn, type LinkPair, macvlanPair, makeNetns, nsRef, requireRoot, snapshotNs, snapshotRootNs, tcIn, vethPair } from '../support/fixtures.js';
import { iperfServer, measureL2 } from '../support/traffic.js';

const root = requireRoot(['ip', 'tc', 'nsenter', 'iperf3']);
const mbit = (bps: number): string => `${(bps / 1e6).toFixed(3)} Mbit/s`;

interface TcQdisc {
  kind: string;
  handle: string;
  dev?: string;
  options?: Record<string, unknown>;
}
const qdiscsOf = async (ns: string): Promise<TcQdisc[]> => JSON.parse((await tcIn(ns, ['-json', 'qdisc', 'show'])).stdout) as TcQdisc[];
const ifbs = async (ns: string): Promise<string[]> =>
  (JSON.parse((await ipIn(ns, ['-json', 'link', 'show'])).stdout) as { ifname: string }[]).map((l) => l.ifname).filter((n) => /^nqi\d+$/.test(n));
const ifindex = ifindexIn;

for (const kind of ['veth', 'macvlan'] as const) {
  root.describe(`engine on ${kind}`, () => {
    let pair: LinkPair;
    let container: string;
    let peer: string;

    beforeAll(async () => {
      container = await makeNetns(`eng-${kind}-c`);
      peer = await makeNetns(`eng-${kind}-p`);
      pair = kind === 'veth' ? await vethPair(container, peer) : await macvlanPair(container, peer, { peer: 'parent' });
    });
    afterAll(async () => {
      await cleanupAll();
    });

    root.it('applies egress HTB on the device and ingress via an ifb, read back with tc -json', async () => {
      await applyQos(nsRef(container), { egress: { rateBps: 10e6 }, ingress: { rateBps: 20e6 } });
      const q = await qdiscsOf(container);
      const ifb = `nqi${await ifindex(container, 'eth0')}`;
      expect(q.find((x) => x.dev === 'eth0' && x.handle === '4e51:')?.kind).toBe('htb');
      expect(q.find((x) => x.dev === 'eth0' && x.kind === 'ingress')).toBeDefined();
      expect(q.find((x) => x.dev === ifb && x.handle === '4e51:')?.kind).toBe('htb');
      // bounded leaves, never the 1000-packet default: bulk (5010:) and small packets (5003:); on
      // the ifb below 524 Mbit/s the bulk leaf is a tbf that cuts GRO skbs into frames (7010:)
      expect(q.filter((x) => ['5010:', '7010:', '5003:'].includes(x.handle)).map((x) => `${x.dev === ifb ? 'ifb' : x.dev} ${x.handle} ${x.kind}`).sort()).toEqual([
        'eth0 5003: bfifo',
        'eth0 5010: bfifo',
        'ifb 5003: bfifo',
        'ifb 7010: tbf',
      ]);
      const classes = (await tcIn(container, ['class', 'show', 'dev', 'eth0'])).stdout;
      expect(classes).toMatch(/rate 10Mbit ceil 10Mbit burst 12500b cburst 12500b/);
      const filters = JSON.parse((await tcIn(container, ['-json', 'filter', 'show', 'dev', 'eth0', 'ingress'])).stdout) as {
        options?: { actions?: { to_dev?: string }[] };
      }[];
      expect(filters.some((f) => f.options?.actions?.[0]?.to_dev === ifb)).toBe(true);
      expect(await ifbs(container)).toEqual([ifb]);
    });

    for (const rate of [10e6, 1e9]) {
      for (const dir of ['egress', 'ingress'] as const) {
        root.it(`${dir} at ${rate / 1e6}M: steady L2 within ±2 %, first second within +5 %`, async () => {
          await applyQos(nsRef(container), { [dir]: { rateBps: rate } });
          const dev = dir === 'egress' ? 'eth0' : `nqi${await ifindex(container, 'eth0')}`;
          // egress: the container sends (iperf3 -R from the peer); ingress: the peer sends
          const server = await iperfServer(container, pair.a.ipv4);
          const m = await measureL2({
            sample: { ns: container, dev, qdisc: '4e51:' },
            clientNs: peer,
            server,
            seconds: 6,
            reverse: dir === 'egress',
            limitBps: rate,
          });
          await server.stop();
          const why = `${kind} ${dir} ${rate / 1e6}M: steady ${mbit(m.l2.steady.bps)}, first second ${mbit(m.l2.firstSecond.bps)}, goodput ${mbit(m.iperf.receivedBps)}`;
          process.stdout.write(`[accuracy] ${why}\n`);
          expect(Math.abs(m.l2.steady.relError), why).toBeLessThan(0.02);
          expect(m.l2.firstSecond.relError, why).toBeLessThan(0.05);
        }, 60_000);
      }
    }

    root.it('re-apply is idempotent: the kernel state does not change', async () => {
      const spec = { egress: { rateBps: 10e6 }, ingress: { rateBps: 20e6 } };
      await applyQos(nsRef(container), spec);
      const before = await snapshotNs(container);
      const again = await applyQos(nsRef(container), spec);
      expect(again.plan.ip).toEqual([]);
      expect(again.plan.tc.some((op) => op.object === 'filter' || (op.object === 'qdisc' && op.parent === 'root'))).toBe(false);
      expect(await snapshotNs(container)).toBe(before);
    });

    root.it('a new rate updates in place: same qdisc objects, same ifb, new class rate', async () => {
      const ifbBefore = await ifbs(container);
      const rootBefore = (await qdiscsOf(container)).filter((q) => q.handle === '4e51:');
      await applyQos(nsRef(container), { egress: { rateBps: 30e6 }, ingress: { rateBps: 40e6 } });
      expect(await ifbs(container)).toEqual(ifbBefore);
      expect((await qdiscsOf(container)).filter((q) => q.handle === '4e51:')).toEqual(rootBefore);
      expect((await tcIn(container, ['class', 'show', 'dev', 'eth0'])).stdout).toMatch(/rate 30Mbit ceil 30Mbit/);
      expect((await tcIn(container, ['class', 'show', 'dev', ifbBefore[0]!])).stdout).toMatch(/rate 40Mbit ceil 40Mbit/);
    });

    root.it('remove leaves zero objects of ours, and a second remove is a no-op', async () => {
      const r = await removeQos(nsRef(container));
      expect(r.removed).toBeGreaterThan(0);
      const q = await qdiscsOf(container);
      expect(q.filter((x) => x.handle === '4e51:' || x.kind === 'ingress' || x.kind === 'htb' || x.kind === 'bfifo' || x.kind === 'tbf')).toEqual([]);
      expect(await ifbs(container)).toEqual([]);
      const gso = (JSON.parse((await ipIn(container, ['-json', '-details', 'link', 'show', 'dev', 'eth0'])).stdout) as { gso_max_size: number }[])[0]!;
      expect(gso.gso_max_size).toBe(65536); // the cap on the shaped device is given back
      expect((await removeQos(nsRef(container))).removed).toBe(0);
    });

    root.it('an invalid annotation is rejected before any I/O: the namespace stays untouched', async () => {
      const before = await snapshotNs(container);
      expect(() => parseAnnotations({ 'kubernetes.io/egress-bandwidth': '10Mbit' })).toThrow(
        /invalid annotation kubernetes\.io\/egress-bandwidth="10Mbit"/,
      );
      expect(await snapshotNs(container)).toBe(before);
    });
  });
}

/**
 * A first apply plans from ip's view alone when it shows a namespace netqos never shaped
 * (discoverForSetup): tc is asked nothing. An ingress hook someone else put there is only
 * visible to tc: the plan's `qdisc add ... ingress` fails on it, and the engine reads
 * everything and plans again, on their hook. Without that second attempt the apply fails.
 */
for (const hook of ['clsact', 'ingress'] as const) {
  root.describe(`someone else's ${hook} hook in a namespace ip shows as never shaped`, () => {
    let container: string;
    /** their rule: prio 10, a u32 key on 192.0.2.1 */
    const theirs = async (): Promise<{ prio: number; match?: string }[]> =>
      (JSON.parse((await tcIn(container, ['-json', 'filter', 'show', 'dev', 'eth0', 'ingress'])).stdout) as { pref: number; options?: { match?: { value: string } } }[])
        .filter((f) => f.pref === 10 && f.options?.match)
        .map((f) => ({ prio: f.pref, match: f.options?.match?.value }));

    beforeAll(async () => {
      container = await makeNetns(`eng-${hook}-c`);
      const peer = await makeNetns(`eng-${hook}-p`);
      await vethPair(container, peer);
      await tcIn(container, ['qdisc', 'add', 'dev', 'eth0', hook === 'clsact' ? 'clsact' : 'ingress']);
      await tcIn(container, ['filter', 'add', 'dev', 'eth0', 'ingress', 'prio', '10', 'u32', 'match', 'ip', 'dst', '192.0.2.1/32', 'classid', ':1']);
    });
    afterAll(async () => {
      await cleanupAll();
    });

    root.it('apply shapes both directions on their hook, and their hook and filter stay', async () => {
      const r = await applyQos(nsRef(container), { egress: { rateBps: 10e6 }, ingress: { rateBps: 20e6 } });
      expect(r.shaped.map((s) => s.direction).sort()).toEqual(['egress', 'ingress']);
      const q = await qdiscsOf(container);
      expect(q.filter((x) => x.dev === 'eth0' && (x.kind === 'ingress' || x.kind === 'clsact')).map((x) => x.kind)).toEqual([hook]);
      const ifb = `nqi${await ifindex(container, 'eth0')}`;
      expect(q.find((x) => x.dev === 'eth0' && x.handle === '4e51:')?.kind).toBe('htb');
      expect(q.find((x) => x.dev === ifb && x.handle === '4e51:')?.kind).toBe('htb');
      const filters = (await tcIn(container, ['filter', 'show', 'dev', 'eth0', 'ingress'])).stdout;
      expect(filters).toMatch(new RegExp(`pref 49 u32 .*[\\s\\S]*Redirect to device ${ifb}`));
      expect(await theirs()).toEqual([{ prio: 10, match: 'c0000201' }]);
    });

    root.it('remove takes ours and leaves their hook and filter', async () => {
      await removeQos(nsRef(container));
      const q = await qdiscsOf(container);
      expect(q.filter((x) => x.dev === 'eth0' && (x.kind === 'ingress' || x.kind === 'clsact')).map((x) => x.kind)).toEqual([hook]);
      expect(q.filter((x) => x.handle === '4e51:')).toEqual([]);
      expect(await ifbs(container)).toEqual([]);
      expect(await theirs()).toEqual([{ prio: 10, match: 'c0000201' }]);
    });
  });
}

root.describe('the node is never shaped', () => {
  root.it('a host-network target is refused and the node links and qdiscs are unchanged', async () => {
    const before = await snapshotRootNs();
    const self = readFileSync('/proc/self/stat', 'utf8').split(' ')[0];
    for (const ref of [{ path: '/proc/self/ns/net' }, { pid: Number(self) }]) {
      await expect(applyQos(ref, { egress: { rateBps: 10e6 } })).rejects.toThrow(/shares the node's network namespace/);
      await expect(removeQos(ref)).rejects.toThrow(/shares the node's network namespace/);
    }
    expect(await snapshotRootNs()).toBe(before);
  });
});
