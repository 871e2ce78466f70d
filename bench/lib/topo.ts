/**
 * The bench's network: every namespace is ours (nqt-b…), nothing is created in the root
 * namespace, addresses are 198.18.0.0/15.
 *
 *                        R "remote" (a host elsewhere: iperf3 peer, ping peer)
 *             eth0 198.18.0.2 |            | lan0 198.18.1.254 (macvlan network's far end)
 *                             |            |
 *   N "node": r0 198.18.0.1 (routes) ... mvp (macvlan parent, no address)
 *      h<k> 198.18.(10+k).1  -- veth --  C_k eth0 198.18.(10+k).2      (veth containers)
 *      mvp  -- macvlan (bridge) --       C_k eth0 198.18.1.(10+k)       (macvlan containers)
 *   C_k s0 198.18.(100+k).1  -- veth --  S_k eth0 198.18.(100+k).2      (a sender behind the container)
 *
 * N holds the host ends of the veths, as a node's root namespace does, so the CNI plugin run in
 * N puts its ifbs and TBFs there. R is "remote-like" for traffic into a container (its queue is
 * never the shaper's). S sends out of a container through it (C forwards), so the sender's own
 * TCP small queues never see the shaper's queue (which is C's eth0 for netqos): the latency
 * under load shows as it would for traffic a container forwards or receives from afar.
 */
import { ipBatch, makeNetns, nsPath } from '../../test/support/fixtures.js';
import { runTracked } from './proc.js';

export type Device = 'veth' | 'macvlan';

export interface Container {
  slot: number;
  device: Device;
  /** C: the container's namespace, its interface eth0 */
  ns: string;
  ip: string;
  cidr: string;
  /** the host-side veth in N (veth only) */
  hostIf?: string;
  /** S: the namespace behind the container, and its address */
  senderNs: string;
  senderIp: string;
}

export interface Topology {
  node: string;
  remote: string;
  /** R's address routed through N (veth containers reach it there) */
  remoteIp: string;
  /** R's address on the macvlan network */
  remoteLanIp: string;
  containers: Container[];
}

async function sysctlIn(ns: string, key: string, value: string): Promise<void> {
  const path = `/proc/sys/${key.replace(/\./g, '/')}`;
  const r = await runTracked('/usr/bin/nsenter', [`--net=${nsPath(ns)}`, '/bin/sh', '-c', `echo ${value} > ${path}`], { timeoutMs: 5000, comm: 'sh' });
  if (r.code !== 0) throw new Error(`sysctl ${key}=${value} in ${ns}: ${r.stderr.trim()}`);
}

let indexBase = 3000;
const nextIndex = (): number => (indexBase += 2);

export async function buildCore(): Promise<Topology> {
  const node = await makeNetns('b-node');
  const remote = await makeNetns('b-remote');
  const i = nextIndex();
  const j = nextIndex();
  await ipBatch(node, [
    `link add r0 index ${i} type veth peer name eth0 netns ${remote} index ${i + 1}`,
    `link add mvp index ${j} type veth peer name lan0 netns ${remote} index ${j + 1}`,
    'addr add 198.18.0.1/24 dev r0',
    'link set r0 up',
    'link set mvp up',
  ]);
  await ipBatch(remote, ['addr add 198.18.0.2/24 dev eth0', 'link set eth0 up', 'addr add 198.18.1.254/24 dev lan0', 'link set lan0 up', 'route add default via 198.18.0.1']);
  await sysctlIn(node, 'net.ipv4.ip_forward', '1');
  return { node, remote, remoteIp: '198.18.0.2', remoteLanIp: '198.18.1.254', containers: [] };
}

/** A container namespace with eth0 (veth to N, or macvlan on N's mvp) and a sender S behind it. */
export async function addContainer(topo: Topology, device: Device, tag: string): Promise<Container> {
  const slot = topo.containers.length;
  if (slot > 80) throw new Error('addContainer: at most 80 measured containers');
  const ns = await makeNetns(`b-c-${tag}`);
  const senderNs = await makeNetns(`b-s-${tag}`);
  const senderNet = `198.18.${100 + slot}`;
  let ip: string;
  let hostIf: string | undefined;
  if (device === 'veth') {
    const net = `198.18.${10 + slot}`;
    ip = `${net}.2`;
    hostIf = `h${slot}`;
    const k = nextIndex();
    await ipBatch(topo.node, [
      `link add ${hostIf} index ${k} type veth peer name eth0 netns ${ns} index ${k + 1}`,
      `addr add ${net}.1/24 dev ${hostIf}`,
      `link set ${hostIf} up`,
      `route add ${senderNet}.0/24 via ${ip}`,
    ]);
    await ipBatch(ns, [`addr add ${ip}/24 dev eth0`, 'link set eth0 up', `route add default via ${net}.1`]);
  } else {
    ip = `198.18.1.${10 + slot}`;
    await ipBatch(topo.node, [`link add link mvp name mv${slot} type macvlan mode bridge`, `link set mv${slot} netns ${ns} name eth0`]);
    await ipBatch(ns, [`addr add ${ip}/24 dev eth0`, 'link set eth0 up', `route add default via ${topo.remoteLanIp}`]);
    await ipBatch(topo.remote, [`route add ${senderNet}.0/24 via ${ip}`]);
  }
  const k = nextIndex();
  await ipBatch(ns, [`link add s0 index ${k} type veth peer name eth0 netns ${senderNs} index ${k + 1}`, `addr add ${senderNet}.1/24 dev s0`, 'link set s0 up']);
  await ipBatch(senderNs, [`addr add ${senderNet}.2/24 dev eth0`, 'link set eth0 up', `route add default via ${senderNet}.1`]);
  await sysctlIn(ns, 'net.ipv4.ip_forward', '1');
  const c: Container = { slot, device, ns, ip, cidr: `${ip}/24`, ...(hostIf ? { hostIf } : {}), senderNs, senderIp: `${senderNet}.2` };
  topo.containers.push(c);
  return c;
}

/** R's address as a container of this device reaches it */
export const remoteFor = (topo: Topology, c: Container): string => (c.device === 'veth' ? topo.remoteIp : topo.remoteLanIp);
