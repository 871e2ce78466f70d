/**
 * The bench's parsers and builders: busybox ping output, the command line, and the CNI plugin's
 * input as containerd's libcni writes it (bench/lib/ping.ts, args.ts, cni.ts).
 */
import { describe, expect, it } from 'vitest';
import { limitFromText, parseArgs } from '../../bench/lib/args.js';
import { bandwidthFor, cniEnv, cniError, CONTAINERD_BURST_BITS, netConf, timingScript, tunedBurstBits, type CniTarget } from '../../bench/lib/cni.js';
import { pingIntervalS } from '../../bench/lib/measure.js';
import { parsePing } from '../../bench/lib/ping.js';
import { quantityText } from '../../bench/lib/systems.js';

describe('parsePing (busybox 1.35)', () => {
  const out = `PING 198.18.10.2 (198.18.10.2): 56 data bytes
64 bytes from 198.18.10.2: seq=0 ttl=64 time=0.086 ms
64 bytes from 198.18.10.2: seq=2 ttl=63 time=12.500 ms
64 bytes from 198.18.10.2: seq=1 ttl=63 time=1500.250 ms
64 bytes from 198.18.10.2: seq=2 ttl=63 time=99.000 ms (DUP!)

--- 198.18.10.2 ping statistics ---
4 packets transmitted, 3 packets received, +1 duplicates, 25% packet loss
round-trip min/avg/max = 0.086/402.959/1500.250 ms
`;
  it('one RTT per probe sent, in sequence order; lost probes are Infinity; duplicates keep the first reply', () => {
    const p = parsePing(out);
    expect(p.sent).toBe(4);
    expect(p.rttMs).toEqual([0.086, 1500.25, 12.5, Infinity]);
    expect(p.received).toBe(3);
  });
  it('every probe answered', () => {
    const p = parsePing('64 bytes from a: seq=0 ttl=64 time=0.5 ms\n1 packets transmitted, 1 packets received, 0% packet loss\n');
    expect(p).toEqual({ sent: 1, rttMs: [0.5], received: 1 });
  });
  it('no summary (ping killed or not run) is an error naming what it printed', () => {
    expect(() => parsePing('ping: bad address')).toThrow(/no summary: ping: bad address/);
  });
});

describe('ping spacing keeps the probes a small share of the limit', () => {
  it.each([
    [1e6, 0.2],
    [10e6, 0.05],
    [100e6, 0.02],
    [10e9, 0.02],
  ])('%d bit/s -> every %d s', (bps, s) => {
    expect(pingIntervalS(bps)).toBe(s);
    // 98 bytes at L2 per probe
    expect((98 * 8) / s / bps).toBeLessThanOrEqual(0.004);
  });
});

describe('parseArgs', () => {
  it('full run: every limit, device, direction, shaped system, the ceiling, 30 rounds, N up to 500', () => {
    const o = parseArgs([]);
    expect(o.limits).toEqual([1e6, 10e6, 100e6, 1e9, 5e9, 10e9]);
    expect(o.devices).toEqual(['veth', 'macvlan']);
    expect(o.directions).toEqual(['egress', 'ingress']);
    expect(o.systems).toEqual(['netqos', 'cni-containerd', 'cni-tuned']);
    expect(o.ceiling).toBe(true);
    expect(o.costRuns).toBe(30);
    expect(o.scale).toEqual([1, 50, 200, 500]);
    expect(o.tcpSeconds(1e6)).toBe(33); // a 30.75 s steady window
    expect(o.tcpSeconds(10e6)).toBe(10);
    expect(o.tcpSeconds(10e9)).toBe(8);
  });
  it('--quick: 10M and 1G, 5 s runs, UDP below 1G, a TCP-only ceiling, 10 rounds, N = 1 and 50', () => {
    const o = parseArgs(['--quick']);
    expect(o.limits).toEqual([10e6, 1e9]);
    expect(o.tcpSeconds(10e6)).toBe(5);
    expect(o.udpUpTo).toBe(100e6);
    expect(o.ceilingKinds).toEqual(['tcp']);
    expect(parseArgs([]).udpUpTo).toBe(Infinity);
    expect(o.costRuns).toBe(10);
    expect(o.scale).toEqual([1, 50]);
  });
  it('--only narrows to one case and drops the ceiling; * keeps a dimension', () => {
    const o = parseArgs(['--quick', '--only', 'netqos:veth:egress:10M', '--kinds', 'tcp,udp', '--no-cost']);
    expect(o).toMatchObject({ systems: ['netqos'], devices: ['veth'], directions: ['egress'], limits: [10e6], kinds: ['tcp', 'udp'], ceiling: false, costRuns: 0, scale: [] });
    const all = parseArgs(['--only', '*:macvlan:*:*']);
    expect(all.systems).toEqual(['netqos', 'cni-containerd', 'cni-tuned']);
    expect(all.devices).toEqual(['macvlan']);
    expect(all.limits.length).toBe(6);
    expect(parseArgs(['--only', 'unshaped:veth:*:*'])).toMatchObject({ systems: [], ceiling: true });
  });
  it('--kinds none: the setup cost only', () => {
    expect(parseArgs(['--kinds', 'none'])).toMatchObject({ kinds: [], ceiling: false, costRuns: 30 });
  });
  it('errors name the argument and what it wants', () => {
    expect(() => parseArgs(['--only', 'netqos:veth'])).toThrow(/SYSTEM:DEVICE:DIRECTION:LIMIT/);
    expect(() => parseArgs(['--only', 'tc:veth:egress:10M'])).toThrow(/system tc/);
    expect(() => parseArgs(['--only', 'netqos:ipvlan:egress:10M'])).toThrow(/device ipvlan/);
    expect(() => parseArgs(['--only', 'netqos:veth:egress:7M'])).toThrow(/limit "7M"/);
    expect(() => parseArgs(['--kinds', 'tcp,quic'])).toThrow(/quic/);
    expect(() => parseArgs(['--seconds', '2'])).toThrow(/--seconds wants an integer in 4..120/);
    expect(() => parseArgs(['--frobnicate'])).toThrow(/unknown argument --frobnicate/);
    expect(() => parseArgs(['--repeat'])).toThrow(/--repeat needs a value/);
  });
  it('limit texts', () => {
    expect(limitFromText('5G')).toBe(5e9);
    expect(quantityText(5e9)).toBe('5G');
    expect(quantityText(100e6)).toBe('100M');
    expect(quantityText(1500)).toBe('1500');
  });
});

describe('CNI bandwidth plugin input, as containerd (go-cni / libcni) writes it', () => {
  const t: CniTarget = { containerNs: 'nqt-b-c-ck-v-1a2b', ifname: 'eth0', hostIf: 'h1', containerId: 'ab'.repeat(32), containerIpCidr: '198.18.11.2/24' };

  it('containerd sets every annotated direction\'s burst to math.MaxUint32 bits and sends the other as 0/0', () => {
    expect(CONTAINERD_BURST_BITS).toBe(4_294_967_295);
    expect(bandwidthFor('egress', 10e6, 'containerd')).toEqual({ IngressRate: 0, IngressBurst: 0, EgressRate: 10e6, EgressBurst: 4_294_967_295 });
    expect(bandwidthFor('ingress', 1e9, 'containerd')).toEqual({ IngressRate: 1e9, IngressBurst: 4_294_967_295, EgressRate: 0, EgressBurst: 0 });
  });
  it('the tuned burst is 10 ms of rate, at least two frames, in bits', () => {
    expect(tunedBurstBits(10e6)).toBe(100_000);
    expect(tunedBurstBits(1e6)).toBe(2 * 1514 * 8);
    expect(bandwidthFor('egress', 10e9, 'tuned').EgressBurst).toBe(100_000_000);
  });
  it('stdin: name, type, capabilities, runtimeConfig.bandwidth, prevResult with the host veth (no sandbox) and the container interface', () => {
    const conf = JSON.parse(netConf(t, bandwidthFor('egress', 10e6, 'containerd'))) as Record<string, unknown>;
    expect(conf).toEqual({
      cniVersion: '1.0.0',
      name: 'nqt-bench',
      type: 'bandwidth',
      capabilities: { bandwidth: true },
      runtimeConfig: { bandwidth: { IngressRate: 0, IngressBurst: 0, EgressRate: 10e6, EgressBurst: 4_294_967_295 } },
      prevResult: {
        cniVersion: '1.0.0',
        interfaces: [
          { name: 'h1', mac: '02:00:00:00:00:01' },
          { name: 'eth0', mac: '02:00:00:00:00:02', sandbox: '/run/netns/nqt-b-c-ck-v-1a2b' },
        ],
        ips: [{ address: '198.18.11.2/24', interface: 1 }],
      },
    });
  });
  it('macvlan: no host interface in prevResult (there is none)', () => {
    const { hostIf: _drop, ...mac } = t;
    const conf = JSON.parse(netConf(mac, undefined)) as { prevResult: { interfaces: unknown[]; ips: { interface: number }[] }; runtimeConfig?: unknown };
    expect(conf.prevResult.interfaces).toHaveLength(1);
    expect(conf.prevResult.ips[0]!.interface).toBe(0);
    expect(conf.runtimeConfig).toBeUndefined();
  });
  it('env: the CNI_* variables and the K8S_POD_* labels', () => {
    const e = cniEnv('ADD', t);
    expect(e).toMatchObject({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: t.containerId, CNI_NETNS: '/run/netns/nqt-b-c-ck-v-1a2b', CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni' });
    expect(e.CNI_ARGS).toMatch(/^IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=nqt-b-c-ck-v-1a2b;K8S_POD_INFRA_CONTAINER_ID=a/);
  });
  it('the plugin\'s JSON error becomes its message', () => {
    const d = { code: 1, ms: 3, stderr: '', stdout: '{"code":999,"msg":"container interface eth0 has no veth peer","details":"interface \\"eth0\\" was not a veth interface"}' };
    expect(cniError(d)).toBe('container interface eth0 has no veth peer: interface "eth0" was not a veth interface');
    expect(cniError({ ...d, stdout: '', stderr: 'boom\nmore' })).toBe('boom');
    expect(cniError({ ...d, stdout: '', stderr: '' })).toBe('exit 1');
  });
  it('the timing script times the plugin with $EPOCHREALTIME in bash, without a subshell or env(1)', () => {
    const s = timingScript([{ label: 'add', command: 'ADD', env: { CNI_NETNS: "/run/netns/it's" }, confFile: '/tmp/c.json' }], ['true']);
    expect(s).toContain("s=${EPOCHREALTIME/./}; CNI_NETNS='/run/netns/it'\\''s' CNI_COMMAND='ADD' /usr/lib/cni/bandwidth < '/tmp/c.json' > /dev/null 2>&1; rc=$?; e=${EPOCHREALTIME/./}; echo 'add' $rc $((e - s))");
    expect(s).not.toMatch(/\$\((?!\()|env -i/); // $(( )) is arithmetic, $( ) would fork
    expect(s.trimEnd().endsWith('true')).toBe(true);
  });
});
