/**
 * Self-check of test/support on the real kernel: the fixtures wire namespaces that can talk,
 * iperf3 runs, a hand-written TBF measures at its rate through sampleQdiscBytes + l2Summary, and
 * cleanup leaves nothing behind.
 */
import { afterAll, expect } from 'vitest';
import {
  cleanupAll,
  inCI,
  ipIn,
  macvlanPair,
  makeNetns,
  registered,
  requireRoot,
  snapshotNs,
  snapshotRootNs,
  tcIn,
  vethPair,
  type LinkPair,
} from '../support/fixtures.js';
import { iperfClient, iperfServer, measureL2, ping } from '../support/traffic.js';
import { run } from '../../src/kernel/runner.js';
import { toolPath } from '../../src/kernel/tools.js';

const root = requireRoot(['ip', 'tc', 'nsenter', 'iperf3', 'busybox']);

const log = (msg: string): void => {
  process.stdout.write(`[fixtures] ${msg}\n`);
};
const gbit = (bps: number): string => `${(bps / 1e9).toFixed(2)} Gbit/s`;
const mbit = (bps: number): string => `${(bps / 1e6).toFixed(3)} Mbit/s`;
const pct = (x: number): string => `${(x * 100).toFixed(3)} %`;

async function pings(p: LinkPair): Promise<void> {
  expect(await ping(p.a.ns, p.b.ipv4)).toBe(true);
  expect(await ping(p.b.ns, p.a.ipv4)).toBe(true);
  expect(await ping(p.a.ns, p.b.ipv6)).toBe(true);
  expect(await ping(p.b.ns, p.a.ipv6)).toBe(true);
}

root.describe('test/support fixtures on the real kernel', () => {
  let rootBefore = '';
  let made: string[] = [];

  afterAll(async () => {
    await cleanupAll(); // idempotent: the last test has already cleaned up when all went well
  });

  root.it('names namespaces nqt-<tag>-<hex> and wires a veth pair that pings over IPv4 and IPv6', async () => {
    rootBefore = await snapshotRootNs();
    const a = await makeNetns('fxa');
    const b = await makeNetns('fxb');
    expect(a).toMatch(/^nqt-fxa-[0-9a-f]{4}$/);
    const p = await vethPair(a, b, { addrA: '198.18.10.1/24', addrB: '198.18.10.2', mtu: 1500 });
    expect(p.a).toMatchObject({ dev: 'eth0', ipv4: '198.18.10.1', ipv6: 'fd00:6e71:0:a::1' });
    await pings(p);
    const link = JSON.parse((await ipIn(a, ['-j', '-d', 'link', 'show', 'eth0'])).stdout) as { linkinfo: { info_kind: string } }[];
    expect(link[0]!.linkinfo.info_kind).toBe('veth');
  });

  root.it('wires macvlan pairs: two bridge-mode children, and child to the parent veth peer', async () => {
    const a = await makeNetns('mva');
    const b = await makeNetns('mvb');
    const p = await macvlanPair(a, b);
    expect(p.switchNs).toMatch(/^nqt-sw-/);
    await pings(p);
    const kinds = JSON.parse((await ipIn(a, ['-j', '-d', 'link', 'show', 'eth0'])).stdout) as { linkinfo: { info_kind: string; info_data: { mode: string } } }[];
    expect(kinds[0]!.linkinfo).toMatchObject({ info_kind: 'macvlan', info_data: { mode: 'bridge' } });

    const c = await makeNetns('mvc');
    const d = await makeNetns('peer');
    const q = await macvlanPair(c, d, { peer: 'parent' });
    await pings(q);
    const peerKind = JSON.parse((await ipIn(d, ['-j', '-d', 'link', 'show', 'eth0'])).stdout) as { linkinfo: { info_kind: string } }[];
    expect(peerKind[0]!.linkinfo.info_kind).toBe('veth');
  });

  root.it('runs iperf3 unshaped for 2 s at more than 1 Gbit/s', async () => {
    const tx = await makeNetns('tx');
    const rx = await makeNetns('rx');
    const p = await vethPair(tx, rx);
    const server = await iperfServer(rx, p.b.ipv4);
    const r = await iperfClient(tx, server, { seconds: 2 });
    log(`unshaped veth TCP, 2 s: sent ${gbit(r.sentBps)}, received ${gbit(r.receivedBps)}, per second ${r.intervals.map((i) => gbit(i.bps)).join(', ')}`);
    expect(r.intervals.length).toBeGreaterThanOrEqual(2);
    expect(r.receivedBps).toBeGreaterThan(1e9);
  });

  // A 10 ms bucket: with a 1 ms bucket the kernel, serving the queue late on a loaded 2-core
  // machine, loses rate (measured: -8.6 % at load 2 with the queue always backlogged), which
  // would test the machine, not the measurement pipeline. One run, no retries.
  root.it('measures a hand-written TBF of 100 Mbit within 2 % at L2 (seconds 2..5)', async () => {
    const tx = await makeNetns('tbftx');
    const rx = await makeNetns('tbfrx');
    const p = await vethPair(tx, rx);
    const before = await snapshotNs(tx);
    await tcIn(tx, ['qdisc', 'add', 'dev', 'eth0', 'root', 'tbf', 'rate', '100mbit', 'burst', '125000', 'latency', '10ms']);
    const server = await iperfServer(rx, p.b.ipv4);
    const m = await measureL2({
      sample: { ns: tx, dev: 'eth0', qdisc: 'root' },
      clientNs: tx,
      server,
      seconds: 5,
      intervalMs: 100,
      limitBps: 100e6,
    });
    await server.stop();
    log(
      `TBF 100mbit burst 125000 latency 10ms: L2 steady ${mbit(m.l2.steady.bps)} (${pct(m.l2.steady.relError)}) ` +
        `over ${m.l2.steady.seconds.toFixed(3)} s, first second ${mbit(m.l2.firstSecond.bps)}, backlogged in ` +
        `${(m.l2.steady.backloggedShare * 100).toFixed(0)} % of samples; goodput received ${mbit(m.iperf.receivedBps)}`,
    );
    expect(m.series[0]!.kind).toBe('tbf');
    expect(m.iperf.receivedBps).toBeLessThan(100e6);
    expect(Math.abs(m.l2.steady.relError)).toBeLessThan(0.02);

    await tcIn(tx, ['qdisc', 'del', 'dev', 'eth0', 'root']);
    expect(await snapshotNs(tx)).toBe(before);
  });

  root.it('cleanupAll leaves no namespace, link or process of this run, and the root namespace unchanged', async () => {
    made = registered().netns;
    expect(made.length).toBeGreaterThanOrEqual(10);
    const report = await cleanupAll();
    expect(report.netns.sort()).toEqual([...made].sort());
    expect(registered()).toEqual({ netns: [], rootLinks: [], pids: [] });
    const listed = (await run(toolPath('ip'), ['netns', 'list'])).stdout;
    for (const ns of made) expect(listed).not.toContain(ns);
    const links = (await run(toolPath('ip'), ['-o', 'link', 'show'])).stdout;
    const iperfs = (await run('/usr/bin/pgrep', ['-a', 'iperf3'], { allowFail: true })).stdout;
    for (const ns of made) expect(iperfs).not.toContain(ns);
    if (inCI()) {
      // CI owns the machine: nothing named nqt may exist at all
      expect(listed).not.toMatch(/^nqt/m);
      expect(links).not.toMatch(/^\d+: nqt/m);
    }
    expect(await snapshotRootNs()).toBe(rootBefore);
  });
});
