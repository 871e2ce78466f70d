/**
 * The CNI bandwidth plugin (/usr/lib/cni/bandwidth, Debian containernetworking-plugins 1.1.1),
 * invoked the way containerd's CRI plugin invokes it through go-cni / libcni:
 *
 * - containerd (internal/cri/server/sandbox_run.go, toCNIBandWidth) turns the pod annotations
 *   kubernetes.io/{ingress,egress}-bandwidth into cni.BandWidth{IngressRate, IngressBurst,
 *   EgressRate, EgressBurst} with every burst set to math.MaxUint32 = 2^32-1 bits (checked in
 *   containerd's main branch, 2.x); go-cni passes it as the capability "bandwidth", which libcni
 *   writes into the plugin's stdin as runtimeConfig.bandwidth (go-cni's struct has no JSON tags:
 *   the keys are "IngressRate" ..., and Go's JSON decoding matches them to the plugin's
 *   "ingressRate" ... case-insensitively). Unset directions are sent as 0 / 0.
 * - The plugin is a chained plugin: stdin also carries prevResult (the main plugin's result:
 *   the host-side veth without a sandbox, the container's interface with its netns path).
 * - env: CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_PATH, CNI_ARGS (the K8S_POD_*
 *   labels libcni adds).
 *
 * The plugin shapes in the namespace it runs in ("the host"): a TBF on the host veth for traffic
 * into the container, and an ifb `bwp<hash>` with a TBF for traffic out of it. Here "the host"
 * is a namespace of ours (nqt-b…-node), entered with nsenter, so nothing lands in the real root
 * namespace. DEL deletes the ifb only; the host veth's TBF and ingress qdisc go with the veth.
 */
import { nsPath } from '../../test/support/fixtures.js';
import { runTracked, type Done } from './proc.js';

export const CNI_PLUGIN = '/usr/lib/cni/bandwidth';
export const CNI_NETWORK = 'nqt-bench';
/** containerd's burst for every annotated direction: math.MaxUint32 bits */
export const CONTAINERD_BURST_BITS = 2 ** 32 - 1;

export interface CniBandwidth {
  IngressRate: number;
  IngressBurst: number;
  EgressRate: number;
  EgressBurst: number;
}

export type BurstPolicy = 'containerd' | 'tuned';

/**
 * The hand-tuned burst: 10 ms of rate, at least two full frames (the burst netqos's HTB gets):
 * what an operator who knew the containerd default would choose. TBF needs a bucket of at least
 * one frame, and one of at least 1 ms of rate was within 0.06 % everywhere (ENVIRONMENT.md).
 */
export function tunedBurstBits(rateBps: number, mtu = 1500): number {
  return Math.ceil(Math.max(rateBps * 0.01, 2 * (mtu + 14) * 8));
}

/** Pure: runtimeConfig.bandwidth for one shaped direction, as containerd builds it (or tuned). */
export function bandwidthFor(direction: 'ingress' | 'egress', rateBps: number, burst: BurstPolicy): CniBandwidth {
  const bits = burst === 'containerd' ? CONTAINERD_BURST_BITS : tunedBurstBits(rateBps);
  const bw: CniBandwidth = { IngressRate: 0, IngressBurst: 0, EgressRate: 0, EgressBurst: 0 };
  if (direction === 'ingress') {
    bw.IngressRate = rateBps;
    bw.IngressBurst = bits;
  } else {
    bw.EgressRate = rateBps;
    bw.EgressBurst = bits;
  }
  return bw;
}

export interface CniTarget {
  /** the container's namespace (CNI_NETNS = /run/netns/<ns>) and interface */
  containerNs: string;
  ifname: string;
  /** the host-side veth in the node namespace (absent for macvlan: there is none) */
  hostIf?: string;
  containerId: string;
  containerIpCidr: string;
}

/** Pure: the plugin's stdin as libcni writes it for the chained bandwidth plugin. */
export function netConf(t: CniTarget, bw: CniBandwidth | undefined): string {
  const interfaces = [
    ...(t.hostIf ? [{ name: t.hostIf, mac: '02:00:00:00:00:01' }] : []),
    { name: t.ifname, mac: '02:00:00:00:00:02', sandbox: nsPath(t.containerNs) },
  ];
  return JSON.stringify({
    cniVersion: '1.0.0',
    name: CNI_NETWORK,
    type: 'bandwidth',
    capabilities: { bandwidth: true },
    ...(bw ? { runtimeConfig: { bandwidth: bw } } : {}),
    prevResult: {
      cniVersion: '1.0.0',
      interfaces,
      ips: [{ address: t.containerIpCidr, interface: interfaces.length - 1 }],
    },
  });
}

/** Pure: the environment libcni gives a plugin. */
export function cniEnv(command: 'ADD' | 'DEL', t: CniTarget): Record<string, string> {
  return {
    CNI_COMMAND: command,
    CNI_CONTAINERID: t.containerId,
    CNI_NETNS: nsPath(t.containerNs),
    CNI_IFNAME: t.ifname,
    CNI_PATH: '/usr/lib/cni',
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=${t.containerNs};K8S_POD_INFRA_CONTAINER_ID=${t.containerId};K8S_POD_UID=${t.containerId.slice(0, 8)}`,
    PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
  };
}

/** ADD or DEL run in the node namespace (through nsenter: the time includes one exec more than containerd pays). */
export function cniInvoke(nodeNs: string, command: 'ADD' | 'DEL', t: CniTarget, bw: CniBandwidth | undefined): Promise<Done> {
  return runTracked('/usr/bin/nsenter', [`--net=${nsPath(nodeNs)}`, CNI_PLUGIN], {
    input: netConf(t, bw),
    env: cniEnv(command, t),
    timeoutMs: 30_000,
    comm: 'bandwidth',
  });
}

/** The error text a failed plugin prints (CNI's JSON error on stdout: {code, msg, details}). */
export function cniError(d: Done): string {
  try {
    const j = JSON.parse(d.stdout) as { msg?: string; details?: string };
    if (j.msg) return j.details ? `${j.msg}: ${j.details}` : j.msg;
  } catch {
    // not JSON
  }
  return (d.stderr || d.stdout).trim().split('\n')[0] || `exit ${d.code}`;
}

/**
 * A bash script, run once inside the node namespace, that times the plugin itself: bash forks
 * and execs it as containerd does, and $EPOCHREALTIME around each call leaves nsenter's own
 * exec out. Prints "<label> <exit code> <µs>" per call. Each item's conf is a file.
 */
export function timingScript(calls: readonly { label: string; command: 'ADD' | 'DEL'; env: Record<string, string>; confFile: string }[], after: readonly string[] = []): string {
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const lines = ['set -u'];
  for (const c of calls) {
    const env = Object.entries({ ...c.env, CNI_COMMAND: c.command })
      .map(([k, v]) => `${k}=${q(v)}`)
      .join(' ');
    // prefix assignments: bash forks and execs the plugin itself (no env(1), no subshell for the clock)
    lines.push(`s=\${EPOCHREALTIME/./}; ${env} ${CNI_PLUGIN} < ${q(c.confFile)} > /dev/null 2>&1; rc=$?; e=\${EPOCHREALTIME/./}; echo ${q(c.label)} $rc $((e - s))`);
  }
  lines.push(...after);
  return `${lines.join('\n')}\n`;
}
