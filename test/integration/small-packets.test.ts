/**
 * Small packets first (src/plan/params.ts smallShare), on the real kernel: a ping through a
 * shaped direction that a TCP flow saturates waits for at most the packet being sent, not for
 * the bulk queue; and the small-packet class cannot push the total over the limit.
 *
 * Without the class, ingress at 10M held one 64 KiB GRO skb plus a frame in one FIFO, and the
 * ping waited behind it: p50 46 to 52 ms in the bench. A p50 under 5 ms cannot happen there.
 */
import { afterAll, beforeAll, expect } from 'vitest';
import { applyQos } from '../../src/engine.js';
import { run } from '../../src/kernel/runner.js';
import { toolPath } from '../../src/kernel/tools.js';
import { parsePing } from '../../bench/lib/ping.js';
import { cleanupAll, ifindexIn, type LinkPair, makeNetns, nsRef, programPath, requireRoot, tcIn, vethPair } from '../support/fixtures.js';
import { iperfClient, iperfServer, measureL2, type IperfServer } from '../support/traffic.js';

const root = requireRoot(['ip', 'tc', 'nsenter', 'iperf3', 'busybox']);
const LIMIT = 10e6;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function pingRtts(ns: string, addr: string, count: number): Promise<number[]> {
  const args = [`--net=/run/netns/${ns}`, programPath('busybox'), 'ping', '-c', String(count), '-i', '0.05', '-W', '2', addr];
  const res = await run(toolPath('nsenter'), args, { allowFail: true, timeoutMs: (count * 0.05 + 10) * 1000 });
  return parsePing(res.stdout).rttMs;
}
const quantile = (xs: number[], q: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;

/** `tc -s class show` is text in iproute2 6.1: the bytes and packets a class sent */
async function classSent(ns: string, dev: string, classid: string): Promise<{ bytes: number; packets: number }> {
  const text = (await tcIn(ns, ['-s', 'class', 'show', 'dev', dev])).stdout;
  const block = text.split(/\n(?=class )/).find((b) => b.startsWith(`class htb ${classid} `));
  const m = block && /Sent (\d+) bytes (\d+) pkt/.exec(block);
  if (!m) throw new Error(`no class ${classid} on ${dev}: ${text}`);
  return { bytes: Number(m[1]), packets: Number(m[2]) };
}

root.describe('small packets first under a saturating flow (measured)', () => {
  let c: string;
  let p: string;
  let pair: LinkPair;
  let ifb: string;
  let servers: IperfServer[] = [];

  beforeAll(async () => {
    c = await makeNetns('small-c');
    p = await makeNetns('small-p');
    pair = await vethPair(c, p);
    await applyQos(nsRef(c), { egress: { rateBps: LIMIT }, ingress: { rateBps: LIMIT } });
    ifb = `nqi${await ifindexIn(c, pair.a.dev)}`;
  });
  afterAll(async () => {
    for (const s of servers) await s.stop();
    servers = [];
    await cleanupAll();
  });

  for (const direction of ['ingress', 'egress'] as const) {
    root.it(`${direction} 10M: a ping waits for no queue (p50 < 5 ms) and the flow keeps the limit`, async () => {
      // ingress: the peer sends into the container; egress: the container sends (iperf3 -R)
      const server = await iperfServer(c, pair.a.ipv4, { port: direction === 'ingress' ? 5301 : 5302 });
      servers.push(server);
      const shapedDev = direction === 'ingress' ? ifb : pair.a.dev;
      const before = await classSent(c, shapedDev, '4e51:3');
      const bulkBefore = await classSent(c, shapedDev, '4e51:10');
      const flow = iperfClient(p, server, { seconds: 8, ...(direction === 'egress' ? { reverse: true } : {}) });
      await sleep(2000); // the flow has filled the queue
      const [from, to] = direction === 'ingress' ? [p, pair.a.ipv4] : [c, pair.b.ipv4];
      const rtts = await pingRtts(from, to, 80);
      const iperf = await flow;
      const small = await classSent(c, shapedDev, '4e51:3');
      const bulk = await classSent(c, shapedDev, '4e51:10');
      const why = `${direction}: ping p50 ${quantile(rtts, 0.5)} p90 ${quantile(rtts, 0.9)} ms, goodput ${(iperf.receivedBps / 1e6).toFixed(2)} Mbit/s, small class +${small.packets - before.packets} pkts`;
      expect(rtts.filter(Number.isFinite).length, why).toBeGreaterThanOrEqual(76);
      expect(quantile(rtts, 0.5), why).toBeLessThan(5);
      // the probes (and, egress, the flow's ACKs) went through the small class, the flow through bulk
      expect(small.packets - before.packets, why).toBeGreaterThanOrEqual(76);
      expect(bulk.bytes - bulkBefore.bytes, why).toBeGreaterThan(0.8 * (LIMIT / 8) * 6);
      expect(iperf.receivedBps, why).toBeGreaterThan(0.9 * LIMIT);
    }, 60_000);
  }

  root.it('a flood of small packets cannot push the total over the limit, nor starve bulk', async () => {
    const server = await iperfServer(c, pair.a.ipv4, { port: 5303 });
    const udpServer = await iperfServer(c, pair.a.ipv4, { port: 5304 });
    servers.push(server, udpServer);
    // 200-byte datagrams (228-byte IP packets: small) at 1.5x the limit, from before the TCP flow
    // starts to after it ends (100-byte ones at 2x, 17.6k packets/s, once left the 2-core CI
    // machine short of CPU: the total read 23 % under the limit, the shaper not saturated)
    const args = [`--net=/run/netns/${p}`, programPath('iperf3'), '-c', pair.a.ipv4, '-p', '5304', '-u', '-b', String(1.5 * LIMIT), '-l', '200', '-t', '10', '-J'];
    const flood = run(toolPath('nsenter'), args, { allowFail: true, timeoutMs: 30_000 });
    await sleep(500);
    const bulk0 = await classSent(c, ifb, '4e51:10');
    const small0 = await classSent(c, ifb, '4e51:3');
    const { l2 } = await measureL2({ sample: { ns: c, dev: ifb, qdisc: 'root' }, clientNs: p, server, seconds: 7, limitBps: LIMIT });
    const bulk = (await classSent(c, ifb, '4e51:10')).bytes - bulk0.bytes;
    const small = (await classSent(c, ifb, '4e51:3')).bytes - small0.bytes;
    const floodRes = await flood;
    const why = `steady total ${(l2.steady.bps / 1e6).toFixed(3)} Mbit/s, bulk ${(bulk / 1e6).toFixed(2)} MB and small ${(small / 1e6).toFixed(2)} MB meanwhile (flood exit ${floodRes.code})`;
    expect(floodRes.code, why).toBe(0);
    // the small class was busy (it had a flood), and the total still held the limit
    expect(small, why).toBeGreaterThan(0.03 * (LIMIT / 8) * 7);
    expect(l2.steady.relError, why).toBeLessThan(0.01);
    expect(l2.steady.relError, why).toBeGreaterThan(-0.02);
    // bulk is guaranteed 95 % of the limit; TCP backs off at the flood's losses and the small
    // class borrows what it leaves (measured: 74 % bulk over a window that includes ~1 s of
    // flood alone). A starved flow would get next to nothing.
    expect(bulk / (bulk + small), why).toBeGreaterThan(0.6);
  }, 60_000);
});
