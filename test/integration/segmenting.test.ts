/**
 * The ifb's bulk leaf below 524 Mbit/s segments GRO skbs (src/plan/params.ts segments), on the
 * real kernel with a TCP sender on the veth's peer: its RTT is far under 512 us, so the kernel
 * hands the veth 64 KiB TSO skbs at any rate and the container's side receives them whole.
 *
 * Without segmenting (a bfifo leaf), HTB sent and charged each of them whole, half a second of
 * a 1M limit at once: the bench measured 250 ms bins with a CoV of 21.8 and 28.3 % at 1M
 * ingress, and a single stream at 10 to 40M now and then 6 to 7 % short. Measured here with the
 * bfifo leaf (the same tests, leaf check dropped): 1M CoV 49.5 and 33.1 %; 20M, 100 ms bins,
 * CoV 2.19, 2.29 and 2.51 % (with the segmenting leaf 0.42 to 0.53 %). The qdisc counters
 * cannot tell a GSO skb from its frames (they count gso_segs packets), so the bins do.
 */
import { afterAll, beforeAll, expect } from 'vitest';
import { applyQos } from '../../src/engine.js';
import { cleanupAll, ifindexIn, type LinkPair, makeNetns, nsRef, requireRoot, tcIn, vethPair } from '../support/fixtures.js';
import { iperfServer, measureL2, type IperfServer, type QdiscSample } from '../support/traffic.js';

const root = requireRoot(['ip', 'tc', 'nsenter', 'iperf3']);

const cov = (xs: number[]): number => {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  return Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length) / mean;
};
/** bit/s between consecutive samples from index `from` to `to` */
const bins = (series: readonly QdiscSample[], from: number, to: number): number[] => {
  const out: number[] = [];
  for (let i = from + 1; i <= to; i++) out.push(((series[i]!.bytes - series[i - 1]!.bytes) * 8 * 1000) / (series[i]!.t - series[i - 1]!.t));
  return out;
};

root.describe('ingress: GRO skbs cut into frames below 524 Mbit/s (measured)', () => {
  let c: string;
  let p: string;
  let pair: LinkPair;
  let ifb: string;
  let servers: IperfServer[] = [];

  beforeAll(async () => {
    c = await makeNetns('seg-c');
    p = await makeNetns('seg-p');
    pair = await vethPair(c, p);
    ifb = `nqi${await ifindexIn(c, pair.a.dev)}`;
  });
  afterAll(async () => {
    for (const s of servers) await s.stop();
    servers = [];
    await cleanupAll();
  });

  root.it('1M: the bulk leaf is a tbf; 250 ms bins even (CoV <= 10 %), steady within 1 %', async () => {
    await applyQos(nsRef(c), { ingress: { rateBps: 1e6 } });
    const leaf = JSON.parse((await tcIn(c, ['-json', 'qdisc', 'show', 'dev', ifb, 'parent', '4e51:10'])).stdout) as { kind: string; handle: string }[];
    expect(leaf.map((q) => `${q.kind} ${q.handle}`)).toEqual(['tbf 7010:']);
    const server = await iperfServer(c, pair.a.ipv4, { port: 5311 });
    servers.push(server);
    const { series, l2 } = await measureL2({ sample: { ns: c, dev: ifb, qdisc: 'root' }, clientNs: p, server, seconds: 12, intervalMs: 250, limitBps: 1e6 });
    const b = bins(series, l2.steady.from, l2.steady.to);
    const why = `steady ${(l2.steady.bps / 1e6).toFixed(4)} Mbit/s, ${b.length} bins CoV ${(cov(b) * 100).toFixed(1)} %, first second ${(l2.firstSecond.relError * 100).toFixed(1)} %`;
    expect(b.length, why).toBeGreaterThanOrEqual(30);
    expect(cov(b), why).toBeLessThanOrEqual(0.1);
    expect(Math.abs(l2.steady.relError), why).toBeLessThan(0.01);
    // issue 2's bound; two frames of burst are already 2.4 % of a second at 1M
    expect(l2.firstSecond.relError, why).toBeLessThan(0.05);
  }, 60_000);

  root.it('20M: one local TCP stream holds the limit, 100 ms bins even (CoV <= 1.2 %)', async () => {
    await applyQos(nsRef(c), { ingress: { rateBps: 20e6 } });
    const server = await iperfServer(c, pair.a.ipv4, { port: 5312 });
    servers.push(server);
    const { series, l2 } = await measureL2({ sample: { ns: c, dev: ifb, qdisc: 'root' }, clientNs: p, server, seconds: 6, limitBps: 20e6 });
    const b = bins(series, l2.steady.from, l2.steady.to);
    const why = `steady ${(l2.steady.bps / 1e6).toFixed(3)} Mbit/s, ${b.length} bins of 100 ms CoV ${(cov(b) * 100).toFixed(2)} %, backlogged ${(l2.steady.backloggedShare * 100).toFixed(0)} % of samples`;
    expect(Math.abs(l2.steady.relError), why).toBeLessThan(0.02);
    expect(b.length, why).toBeGreaterThanOrEqual(30);
    expect(cov(b), why).toBeLessThanOrEqual(0.012);
  }, 60_000);
});
