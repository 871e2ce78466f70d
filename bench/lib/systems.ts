/**
 * The systems compared: netqos (the engine, as the OCI hook calls it), the CNI bandwidth plugin
 * with containerd's burst and with a hand-tuned one, and unshaped (a counting pfifo only). Each
 * applies one direction's limit to a container and says where its shaper's byte counter is.
 */
import { BANDWIDTH_KEYS, INTERFACES_KEY, parseAnnotations } from '../../src/domain/annotations.js';
import { DEFAULT_CONFIG } from '../../src/domain/config.js';
import { applyQos, removeQos } from '../../src/engine.js';
import { nsRef, tcIn } from '../../test/support/fixtures.js';
import { bandwidthFor, cniError, cniInvoke, CNI_NETWORK, type BurstPolicy, type CniTarget } from './cni.js';
import type { Container, Topology } from './topo.js';

export type Direction = 'ingress' | 'egress';
export type SystemId = 'netqos' | 'cni-containerd' | 'cni-tuned' | 'unshaped';
export const SYSTEMS: readonly SystemId[] = ['netqos', 'cni-containerd', 'cni-tuned', 'unshaped'];

export const SYSTEM_LABEL: Record<SystemId, string> = {
  netqos: 'netqos',
  'cni-containerd': 'CNI bandwidth, containerd burst (2^32-1 bit)',
  'cni-tuned': 'CNI bandwidth, tuned burst (10 ms of rate)',
  unshaped: 'unshaped (ceiling)',
};

/** Where the shaper's byte counter is read: `tc -s qdisc show dev <dev>` in <ns>, qdisc <handle>. */
export interface CounterAt {
  ns: string;
  dev: string;
  handle: string;
}

export interface Shaping {
  counter: CounterAt;
  /** what the system put in place, for the report (rate, burst, leaf / limit) */
  detail: string;
  remove(): Promise<void>;
}

export class Unsupported extends Error {}

/** "10M", "1G": the annotation text of a limit (Kubernetes quantities, decimal) */
export function quantityText(bps: number): string {
  if (bps >= 1e9 && bps % 1e9 === 0) return `${bps / 1e9}G`;
  if (bps >= 1e6 && bps % 1e6 === 0) return `${bps / 1e6}M`;
  if (bps >= 1e3 && bps % 1e3 === 0) return `${bps / 1e3}k`;
  return String(bps);
}

const hookOptions = { defaultLatencyUs: DEFAULT_CONFIG.queueLatencyUs, timeoutMs: DEFAULT_CONFIG.hookTimeoutMs };

/** The annotations a user would put on the container: the limit, and eth0 only (S's link s0 is the bench's). */
export const netqosAnnotations = (direction: Direction, bps: number): Record<string, string> => ({
  [BANDWIDTH_KEYS[direction]]: quantityText(bps),
  [INTERFACES_KEY]: 'eth0',
});

async function netqos(c: Container, direction: Direction, bps: number): Promise<Shaping> {
  const spec = parseAnnotations(netqosAnnotations(direction, bps));
  if (!spec) throw new Error('the annotations parsed to no shaping');
  const res = await applyQos(nsRef(c.ns), spec, hookOptions);
  const s = res.shaped.find((x) => x.direction === direction && x.dev === 'eth0');
  if (!s) throw new Error(`applyQos shaped nothing for ${direction} on eth0`);
  if (s.rateBps !== bps) throw new Error(`applyQos shaped ${s.rateBps} bit/s, asked ${bps}`);
  return {
    counter: { ns: c.ns, dev: s.shapedOn, handle: '4e51:' },
    detail: `htb rate ${quantityText(bps)} burst ${s.burstBytes}B quantum ${s.quantum}, leaf ${s.leaf}`,
    remove: async () => {
      await removeQos(nsRef(c.ns), hookOptions);
    },
  };
}

let cniCounter = 0;

export function cniTarget(c: Container): CniTarget {
  const id = `${(++cniCounter).toString(16).padStart(8, '0')}${c.ns.replace(/[^a-f0-9]/g, '')}`.padEnd(64, '0').slice(0, 64);
  return { containerNs: c.ns, ifname: 'eth0', ...(c.hostIf ? { hostIf: c.hostIf } : {}), containerId: id, containerIpCidr: c.cidr };
}

async function cni(topo: Topology, c: Container, direction: Direction, bps: number, burst: BurstPolicy): Promise<Shaping> {
  const t = cniTarget(c);
  const bw = bandwidthFor(direction, bps, burst);
  const add = await cniInvoke(topo.node, 'ADD', t, bw);
  if (add.code !== 0) {
    const why = cniError(add);
    if (!c.hostIf) throw new Unsupported(`CNI ADD refused the ${c.device}: ${why}`);
    throw new Error(`CNI ADD failed: ${why}`);
  }
  const result = JSON.parse(add.stdout) as { interfaces?: { name: string }[] };
  const ifb = result.interfaces?.find((i) => i.name.startsWith('bwp'))?.name;
  const dev = direction === 'ingress' ? c.hostIf! : ifb;
  if (!dev) throw new Error(`CNI ADD reported no ifb: ${add.stdout.slice(0, 200)}`);
  const q = JSON.parse((await tcIn(topo.node, ['-j', 'qdisc', 'show', 'dev', dev])).stdout) as { kind: string; handle: string; options?: Record<string, number> }[];
  const tbf = q.find((x) => x.kind === 'tbf');
  if (!tbf) throw new Error(`no TBF on ${dev} after CNI ADD`);
  return {
    counter: { ns: topo.node, dev, handle: tbf.handle },
    detail: `tbf rate ${quantityText(bps)} burst ${tbf.options?.burst ?? '?'}B lat ${((tbf.options?.lat ?? 0) / 1e3).toFixed(1)}ms (network ${CNI_NETWORK})`,
    remove: async () => {
      const del = await cniInvoke(topo.node, 'DEL', t, bw);
      if (del.code !== 0) throw new Error(`CNI DEL failed: ${cniError(del)}`);
      // DEL removes the ifb only; the host veth's TBF and ingress qdisc go when the runtime
      // deletes the veth. The veth stays here for the next case: remove them the same way.
      await tcIn(topo.node, ['qdisc', 'del', 'dev', c.hostIf!, 'root'], { allowFail: true });
      await tcIn(topo.node, ['qdisc', 'del', 'dev', c.hostIf!, 'ingress'], { allowFail: true });
    },
  };
}

/** The ceiling: nothing shapes; a pfifo of 10 000 packets counts the bytes where a shaper would be. */
async function unshaped(topo: Topology, c: Container, direction: Direction): Promise<Shaping> {
  // egress: the container's eth0; ingress: the remote sender's device (R's own device is never a bottleneck here)
  const ns = direction === 'egress' ? c.ns : topo.remote;
  const dev = direction === 'egress' ? 'eth0' : c.device === 'veth' ? 'eth0' : 'lan0';
  await tcIn(ns, ['qdisc', 'replace', 'dev', dev, 'root', 'handle', '4e5f:', 'pfifo', 'limit', '10000']);
  return {
    counter: { ns, dev, handle: '4e5f:' },
    detail: 'no shaping (pfifo 10000 packets counts the bytes)',
    remove: async () => {
      await tcIn(ns, ['qdisc', 'del', 'dev', dev, 'root'], { allowFail: true });
    },
  };
}

export function applySystem(sys: SystemId, topo: Topology, c: Container, direction: Direction, bps: number): Promise<Shaping> {
  switch (sys) {
    case 'netqos':
      return netqos(c, direction, bps);
    case 'cni-containerd':
      return cni(topo, c, direction, bps, 'containerd');
    case 'cni-tuned':
      return cni(topo, c, direction, bps, 'tuned');
    case 'unshaped':
      return unshaped(topo, c, direction);
  }
}
