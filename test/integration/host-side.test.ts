/**
 * vethShaping "host" on the real kernel. A namespace of ours plays the node (never the real root
 * namespace): it holds the host ends of the containers' veths, routes, and a second veth to a
 * "remote" namespace. Checked: what lands where (nothing in the container, an aliased nqh ifb and
 * two trees on the node), both directions measured at L2 from the node's qdisc byte counters
 * (5 s each, steady at most 2 % over and at most 10 % under), a privileged container deleting every qdisc on its eth0 does
 * not lift the limit (measured), teardown leaves the node exactly as before, teardown after the
 * container's namespace was deleted still removes the ifb, and gc removes an orphan but never a
 * live container's ifb or a foreign one.
 *
 *   remote R eth0 198.19.200.2 -- node N r0 198.19.200.1 (forwards)
 *   node N h1 198.19.201.1 -- container C eth0 198.19.201.2 (default via .1)
 *   node N h2 198.19.202.1 -- container D eth0 198.19.202.2 (torn down by deleting its namespace)
 */
import { afterAll, beforeAll, expect } from 'vitest';
import { applyQos, removeQos } from '../../src/engine.js';
import { gcHost } from '../../src/engine-host.js';
import { hostIfbName } from '../../src/plan/host-names.js';
import { run } from '../../src/kernel/runner.js';
import { toolPath } from '../../src/kernel/tools.js';
import { cleanupAll, ipBatch, ipIn, makeNetns, nsPath, nsRef, requireRoot, snapshotNs, tcIn } from '../support/fixtures.js';
import { iperfServer, measureL2 } from '../support/traffic.js';

const root = requireRoot(['ip', 'tc', 'nsenter', 'iperf3']);
const mbit = (bps: number): string => `${(bps / 1e6).toFixed(3)} Mbit/s`;
const ID_C = 'c0ffee0000000000000000000000000000000000000000000000000000000001';
const ID_D = 'c0ffee0000000000000000000000000000000000000000000000000000000002';
const EGRESS = 40e6;
const INGRESS = 60e6;

interface IpLinkJson {
  ifname: string;
  ifalias?: string;
  linkinfo?: { info_kind?: string };
}
const linksOf = async (ns: string): Promise<IpLinkJson[]> => JSON.parse((await ipIn(ns, ['-json', '-details', 'link', 'show'])).stdout) as IpLinkJson[];
const ifbsOf = async (ns: string): Promise<string[]> =>
  (await linksOf(ns)).filter((l) => l.linkinfo?.info_kind === 'ifb').map((l) => l.ifname).sort();
/**
 * `ip netns del` returns before the kernel has torn the namespace down (cleanup_net runs in a
 * workqueue): the veth pair, and with it the node end, goes a moment later. Podman's poststop
 * comes long after that; the tests wait for it (bounded) so they test the state they mean to.
 */
async function deleteNetnsAndWait(ns: string, node: string, nodeEnd: string): Promise<void> {
  await run(toolPath('ip'), ['netns', 'del', ns]);
  for (let i = 0; i < 200 && (await linksOf(node)).some((l) => l.ifname === nodeEnd); i++) await new Promise((r) => setTimeout(r, 10));
  expect((await linksOf(node)).map((l) => l.ifname), `${nodeEnd} still on the node 2 s after its namespace was deleted`).not.toContain(nodeEnd);
}
const qdiscsOf = async (ns: string, dev: string): Promise<string> => (await tcIn(ns, ['qdisc', 'show', 'dev', dev])).stdout;

async function forward(ns: string): Promise<void> {
  const r = await run(toolPath('nsenter'), [`--net=${nsPath(ns)}`, '/bin/sh', '-c', 'echo 1 > /proc/sys/net/ipv4/ip_forward'], { allowFail: true });
  if (r.code !== 0) throw new Error(`ip_forward in ${ns}: ${r.stderr}`);
}

root.describe('vethShaping "host": shaping on the node end of the veth', () => {
  let node: string;
  let remote: string;
  let c: string;
  let d: string;
  let hostSide: { identity: string; netns: { path: string } };
  let before: string;

  beforeAll(async () => {
    node = await makeNetns('hs-node');
    remote = await makeNetns('hs-remote');
    c = await makeNetns('hs-c');
    d = await makeNetns('hs-d');
    await ipBatch(node, [
      'link add r0 index 4100 type veth peer name eth0 netns ' + remote + ' index 4101',
      'link add h1 index 4102 type veth peer name eth0 netns ' + c + ' index 4103',
      'link add h2 index 4104 type veth peer name eth0 netns ' + d + ' index 4105',
      'addr add 198.19.200.1/24 dev r0',
      'addr add 198.19.201.1/24 dev h1',
      'addr add 198.19.202.1/24 dev h2',
      'link set r0 up',
      'link set h1 up',
      'link set h2 up',
    ]);
    await ipBatch(remote, ['addr add 198.19.200.2/24 dev eth0', 'link set eth0 up', 'route add default via 198.19.200.1']);
    await ipBatch(c, ['addr add 198.19.201.2/24 dev eth0', 'link set eth0 up', 'route add default via 198.19.201.1']);
    await ipBatch(d, ['addr add 198.19.202.2/24 dev eth0', 'link set eth0 up', 'route add default via 198.19.202.1']);
    await forward(node);
    hostSide = { identity: ID_C, netns: { path: nsPath(node) } };
    before = await snapshotNs(node);
  });
  afterAll(async () => {
    await cleanupAll();
  });

  root.it('applies on the node: an ifb named and aliased from the identity, the redirect on h1, HTB on h1; nothing in the container', async () => {
    const cBefore = await snapshotNs(c);
    const res = await applyQos(nsRef(c), { egress: { rateBps: EGRESS }, ingress: { rateBps: INGRESS } }, { hostSide });
    const ifb = hostIfbName(ID_C, 'eth0');
    expect(res.shaped.map((s) => [s.dev, s.direction, s.shapedOn, s.onNode])).toEqual([
      ['eth0', 'egress', ifb, true],
      ['eth0', 'ingress', 'h1', true],
    ]);
    expect(await snapshotNs(c)).toBe(cBefore);
    const l = (await linksOf(node)).find((x) => x.ifname === ifb);
    expect(l?.linkinfo?.info_kind).toBe('ifb');
    expect(l?.ifalias).toBe(`netqos:h1:${ID_C}:eth0:4102:h1`);
    expect(await qdiscsOf(node, 'h1')).toMatch(/qdisc htb 4e51: root/);
    expect(await qdiscsOf(node, 'h1')).toMatch(/qdisc ingress ffff:/);
    expect(await qdiscsOf(node, ifb)).toMatch(/qdisc htb 4e51: root/);
    expect((await tcIn(node, ['filter', 'show', 'dev', 'h1', 'ingress'])).stdout).toMatch(new RegExp(`Egress Redirect to device ${ifb}`));
    // h2 (another container) and r0 are untouched
    expect(await qdiscsOf(node, 'h2')).toMatch(/^qdisc noqueue 0: root/);
    expect(await qdiscsOf(node, 'r0')).toMatch(/^qdisc noqueue 0: root/);
    // applying again changes nothing on the node
    const shaped = await snapshotNs(node);
    await applyQos(nsRef(c), { egress: { rateBps: EGRESS }, ingress: { rateBps: INGRESS } }, { hostSide });
    expect(await snapshotNs(node)).toBe(shaped);
  });

  async function measure(dir: 'egress' | 'ingress', tag: string): Promise<number> {
    const rate = dir === 'egress' ? EGRESS : INGRESS;
    const server = await iperfServer(remote, '198.19.200.2');
    const m = await measureL2({
      sample: { ns: node, dev: dir === 'egress' ? hostIfbName(ID_C, 'eth0') : 'h1', qdisc: '4e51:' },
      clientNs: c,
      server,
      seconds: 5,
      reverse: dir === 'ingress', // -R: the remote sends into the container
      limitBps: rate,
    });
    await server.stop();
    const why = `host-side ${dir} ${rate / 1e6}M ${tag}: steady ${mbit(m.l2.steady.bps)} (${(m.l2.steady.relError * 100).toFixed(2)} %), first second ${mbit(m.l2.firstSecond.bps)}, goodput ${mbit(m.iperf.receivedBps)}`;
    process.stdout.write(`[accuracy] ${why}\n`);
    // The limit holds: never more than 2 % over, in the steady window or the first second.
    // Below it, the tolerance is wider than engine.test's: node-side trees get 64 KiB GSO skbs
    // (the container's uncapped eth0, GRO'd traffic the node forwards); with the two-skb leaf
    // (NODE_LEAF_MIN_SKB) eight runs on the shared 2-core machine (load 4 to 6) measured -0.73 to
    // +0.08 % but one ingress run -6.48 %.
    expect(m.l2.steady.relError, why).toBeLessThan(0.02);
    expect(m.l2.steady.relError, why).toBeGreaterThan(-0.1);
    expect(m.l2.firstSecond.relError, why).toBeLessThan(0.05);
    // the receiver's goodput can never exceed the L2 limit (about 95.6 % of it for TCP)
    expect(m.iperf.receivedBps, why).toBeLessThan(rate);
    return m.iperf.receivedBps;
  }

  root.it('egress (container -> remote) is shaped on the node ifb: steady L2 within +2 % / -10 %', async () => {
    await measure('egress', 'applied');
  }, 60_000);

  root.it('ingress (remote -> container) is shaped on h1: steady L2 within +2 % / -10 %', async () => {
    await measure('ingress', 'applied');
  }, 60_000);

  root.it('a privileged container deleting every qdisc on its eth0 does not lift the limit (measured)', async () => {
    for (const args of [['qdisc', 'del', 'dev', 'eth0', 'root'], ['qdisc', 'del', 'dev', 'eth0', 'ingress'], ['qdisc', 'del', 'dev', 'eth0', 'clsact']]) {
      await tcIn(c, args, { allowFail: true });
    }
    // and what it can see of netqos in its own namespace: nothing
    expect(await ifbsOf(c)).toEqual([]);
    expect(await qdiscsOf(c, 'eth0')).not.toMatch(/htb|ingress/);
    await measure('egress', 'after the container deleted its qdiscs');
    await measure('ingress', 'after the container deleted its qdiscs');
  }, 90_000);

  root.it('teardown removes everything on the node: its snapshot equals the one before apply', async () => {
    const r = await removeQos(nsRef(c), { hostSide });
    expect(r).toMatchObject({ present: true });
    expect(r.removed).toBeGreaterThan(0);
    expect(await snapshotNs(node)).toBe(before);
    expect((await removeQos(nsRef(c), { hostSide })).removed).toBe(0);
  });

  root.it('teardown after the container namespace was deleted still removes the node ifb', async () => {
    const dSide = { identity: ID_D, netns: { path: nsPath(node) } };
    await applyQos(nsRef(d), { egress: { rateBps: 10e6 }, ingress: { rateBps: 10e6 } }, { hostSide: dSide });
    const ifb = hostIfbName(ID_D, 'eth0');
    expect(await ifbsOf(node)).toEqual([ifb]);
    await deleteNetnsAndWait(d, node, 'h2'); // as podman does before poststop: the veth pair goes with it
    expect(await ifbsOf(node)).toEqual([ifb]); // the kernel leaves the ifb behind
    const r = await removeQos(nsRef(d), { hostSide: dSide });
    expect(r).toEqual({ present: false, removed: 1 });
    expect(await ifbsOf(node)).toEqual([]);
    // the node is as before, less the veth that went with the namespace
    const withoutH2 = (s: string): string => s.split('\n').filter((line) => !/^(link|qdisc|class|filter) h2 /.test(line)).join('\n');
    expect(await snapshotNs(node)).toBe(withoutH2(before));
  });

  root.it('gc removes an orphaned ifb, and never a live container\'s ifb or a foreign one', async () => {
    // a live container (C shaped again), an orphan (E: shaped, then its namespace deleted), and
    // two foreign ifbs: one with our name pattern but no alias, one with someone else's alias
    await applyQos(nsRef(c), { egress: { rateBps: EGRESS } }, { hostSide });
    const e = await makeNetns('hs-e');
    await ipBatch(node, [`link add h3 index 4106 type veth peer name eth0 netns ${e} index 4107`, 'link set h3 up']);
    await ipBatch(e, ['link set eth0 up']);
    const eSide = { identity: 'orphan-e', netns: { path: nsPath(node) } };
    await applyQos(nsRef(e), { egress: { rateBps: 5e6 } }, { hostSide: eSide });
    await deleteNetnsAndWait(e, node, 'h3');
    await ipBatch(node, ['link add nqh0123456789ab type ifb', 'link add nqt-foreign type ifb', 'link set dev nqt-foreign alias netqos:h1:someone:eth0:4102:h1']);
    const live = hostIfbName(ID_C, 'eth0');
    const orphan = hostIfbName('orphan-e', 'eth0');
    expect(await ifbsOf(node)).toEqual([live, orphan, 'nqh0123456789ab', 'nqt-foreign'].sort());

    const dry = await gcHost({ netns: { path: nsPath(node) }, dryRun: true });
    expect(dry.orphans.map((o) => [o.ifb, o.identity, o.reason])).toEqual([[orphan, 'orphan-e', 'its veth h3 (ifindex 4106) is gone']]);
    expect(dry.removed).toBe(0);
    expect(await ifbsOf(node)).toContain(orphan);

    const res = await gcHost({ netns: { path: nsPath(node) }, graceMs: 200 });
    expect(res).toMatchObject({ removed: 1 });
    expect(await ifbsOf(node)).toEqual([live, 'nqh0123456789ab', 'nqt-foreign'].sort());
    expect((await gcHost({ netns: { path: nsPath(node) }, graceMs: 50 })).orphans).toEqual([]);
    await ipBatch(node, ['link del nqh0123456789ab', 'link del nqt-foreign']);
    await removeQos(nsRef(c), { hostSide });
    expect(await ifbsOf(node)).toEqual([]);
  }, 30_000);
});
