/**
 * Shaping accuracy on the real kernel: for veth and for macvlan (a macvlan child of a veth
 * parent, the far end of the parent as the peer: a container on a macvlan network talking to a
 * host outside), rates 10M and 1G, egress and ingress. Each case applies the annotation the way
 * the OCI hook does (parseAnnotations + applyQos with the default config), runs one iperf3 TCP
 * stream for 8 s, and reads the HTB root's byte counters every 100 ms.
 *
 *   node bench/run.mjs bench/accuracy.ts [--seconds 8]
 *
 * L2 steady = counters between 2 s after the start and the end (the rate tc shapes: every
 * frame's Ethernet + IP + TCP headers); first second = counters over the first second, from
 * the last quiet sample (so it may read low by up to one 100 ms interval). Goodput is iperf3's
 * (about 95.6 % of L2 for full frames). Results: a table on stdout and
 * bench/results/accuracy-<timestamp>.json.
 */
import { loadavg } from 'node:os';
import { BANDWIDTH_KEYS, parseAnnotations } from '../src/domain/annotations.js';
import { DEFAULT_CONFIG } from '../src/domain/config.js';
import type { Direction } from '../src/domain/spec.js';
import { applyQos, removeQos } from '../src/engine.js';
import { cleanupAll, macvlanPair, makeNetns, nsRef, vethPair, type LinkPair } from '../test/support/fixtures.js';
import { iperfServer, measureL2, type L2Summary, type QdiscSample } from '../test/support/traffic.js';
import { fixed, loadText, machine, privateTempDir, requireRootUser, signedPct, table, writeResult } from './common.js';

const RATES = [
  { text: '10M', bps: 10e6 },
  { text: '1G', bps: 1e9 },
] as const;
const DIRECTIONS: readonly Direction[] = ['egress', 'ingress'];
const DEVICES = ['veth', 'macvlan'] as const;
/** goodput / L2 for full 1514-byte frames carrying 1448 bytes of TCP payload (timestamps on) */
const GOODPUT_SHARE = 1448 / 1514;

const mbit = (bps: number): string => fixed(bps / 1e6, bps < 100e6 ? 3 : 1);

function secondsArg(): number {
  const i = process.argv.indexOf('--seconds');
  if (i < 0) return 8;
  const v = Number(process.argv[i + 1]);
  if (!(v >= 4 && v <= 60)) throw new Error('--seconds wants 4..60 (the steady window starts at 2 s)');
  return v;
}

/**
 * The steady window of l2Summary, ended at the last sample where the shaper still held a
 * backlog. l2Summary ends the traffic one sample before the counter's last increase; a few
 * stray bytes after the data stopped (a FIN, iperf3's closing exchange) then pull partial
 * draining bins into the window, which reads up to 1.6 % low at 10M. While the HTB root holds a
 * backlog it is the bottleneck, so every bin up to there is at full rate.
 */
function backloggedSteady(series: readonly QdiscSample[], l2: L2Summary, limitBps: number): { bps: number; relError: number; toIndex: number } {
  const from = l2.steady.from;
  let to = l2.steady.to;
  while (to > from && !(series[to]!.backlog > 0 || series[to]!.qlen > 0)) to--;
  const a = series[from]!;
  const b = series[to]!;
  if (b.t - a.t < 500) return { bps: l2.steady.bps, relError: l2.steady.relError, toIndex: l2.steady.to };
  const bps = ((b.bytes - a.bytes) * 8 * 1000) / (b.t - a.t);
  return { bps, relError: (bps - limitBps) / limitBps, toIndex: to };
}

interface Row {
  device: (typeof DEVICES)[number];
  direction: Direction;
  limit: string;
  limitBps: number;
  /** where the HTB tree was sampled: eth0 (egress) or the ifb (ingress) */
  sampledOn?: string;
  /** steady L2, ended at the last backlogged sample (backloggedSteady) */
  l2SteadyBps?: number;
  steadyError?: number;
  /** l2Summary's own steady window, ended where the counter last moved */
  l2SummarySteadyBps?: number;
  l2SummarySteadyError?: number;
  steadyWindowS?: number;
  firstSecondBps?: number;
  firstSecondError?: number;
  startUncertaintyMs?: number;
  goodputBps?: number;
  goodputShareOfLimit?: number;
  retransmits?: number;
  backloggedShare?: number;
  binMinBps?: number;
  binMaxBps?: number;
  error?: string;
  series?: QdiscSample[];
}

async function measureCase(pair: LinkPair, device: Row['device'], direction: Direction, rate: (typeof RATES)[number], seconds: number): Promise<Row> {
  const row: Row = { device, direction, limit: rate.text, limitBps: rate.bps };
  const container = pair.a.ns;
  const peer = pair.b.ns;
  try {
    await removeQos(nsRef(container)); // each case starts from an unshaped namespace
    const spec = parseAnnotations({ [BANDWIDTH_KEYS[direction]]: rate.text });
    if (!spec) throw new Error('annotation parsed to no shaping');
    const res = await applyQos(nsRef(container), spec, { defaultLatencyUs: DEFAULT_CONFIG.queueLatencyUs, timeoutMs: DEFAULT_CONFIG.hookTimeoutMs });
    const shaped = res.shaped.find((s) => s.direction === direction && s.dev === pair.a.dev);
    if (!shaped) throw new Error(`applyQos shaped nothing for ${direction} on ${pair.a.dev}`);
    if (shaped.rateBps !== rate.bps) throw new Error(`applyQos shaped ${shaped.rateBps} bit/s, asked ${rate.bps}`);
    row.sampledOn = shaped.shapedOn;
    // egress: the container sends (iperf3 -R: the server in the container sends to the peer's
    // client); ingress: the peer's client sends to the container
    const server = await iperfServer(container, pair.a.ipv4);
    try {
      const m = await measureL2({
        sample: { ns: container, dev: shaped.shapedOn, qdisc: '4e51:' },
        clientNs: peer,
        server,
        seconds,
        reverse: direction === 'egress',
        limitBps: rate.bps,
      });
      const steady = backloggedSteady(m.series, m.l2, rate.bps);
      Object.assign(row, {
        l2SteadyBps: steady.bps,
        steadyError: steady.relError,
        l2SummarySteadyBps: m.l2.steady.bps,
        l2SummarySteadyError: m.l2.steady.relError,
        steadyWindowS: (m.series[steady.toIndex]!.t - m.series[m.l2.steady.from]!.t) / 1000,
        firstSecondBps: m.l2.firstSecond.bps,
        firstSecondError: m.l2.firstSecond.relError,
        startUncertaintyMs: m.l2.startUncertaintyMs,
        goodputBps: m.iperf.receivedBps,
        goodputShareOfLimit: m.iperf.receivedBps / rate.bps,
        retransmits: m.iperf.retransmits,
        backloggedShare: m.l2.steady.backloggedShare,
        binMinBps: m.l2.steady.binMinBps,
        binMaxBps: m.l2.steady.binMaxBps,
        series: m.series,
      });
    } finally {
      await server.stop();
    }
  } catch (e) {
    row.error = (e as Error).message;
  }
  return row;
}

async function main(): Promise<boolean> {
  requireRootUser();
  const seconds = secondsArg();
  privateTempDir('accuracy'); // installs the signal handler before any namespace exists
  const mach = machine();
  process.stdout.write(`shaping accuracy: veth and macvlan x 10M, 1G x egress, ingress; one TCP stream, ${seconds} s each\n`);
  process.stdout.write(`load average at start: ${loadText(mach.loadStart)} (${mach.cpus} CPUs)\n`);

  const rows: Row[] = [];
  for (const device of DEVICES) {
    const container = await makeNetns(`acc-${device}-c`);
    const peer = await makeNetns(`acc-${device}-p`);
    const pair = device === 'veth' ? await vethPair(container, peer) : await macvlanPair(container, peer, { peer: 'parent' });
    for (const rate of RATES) {
      for (const direction of DIRECTIONS) {
        const row = await measureCase(pair, device, direction, rate, seconds);
        rows.push(row);
        const short = row.error
          ? `FAILED: ${row.error}`
          : `L2 ${mbit(row.l2SteadyBps!)} Mbit/s (${signedPct(row.steadyError!)}), first second ${mbit(row.firstSecondBps!)}, goodput ${mbit(row.goodputBps!)}`;
        process.stdout.write(`  ${device} ${direction} ${rate.text}: ${short}\n`);
      }
    }
    await cleanupAll(); // this device's namespaces (and the macvlan switch namespace)
  }
  mach.loadEnd = loadavg().map((x) => Math.round(x * 100) / 100);

  const body = rows.map((r) =>
    r.error
      ? [r.device, r.direction, r.limit, 'failed', '', '', '', '', '']
      : [
          r.device,
          r.direction,
          r.limit,
          mbit(r.l2SteadyBps!),
          signedPct(r.steadyError!),
          mbit(r.firstSecondBps!),
          signedPct(r.firstSecondError!),
          mbit(r.goodputBps!),
          `${fixed((r.goodputBps! / r.l2SteadyBps!) * 100)} %`,
        ],
  );
  process.stdout.write('\n');
  process.stdout.write(
    `${table(
      ['device', 'direction', 'limit', 'L2 steady Mbit/s', 'error', 'first second Mbit/s', 'vs limit', 'goodput Mbit/s', 'goodput/L2'],
      body,
      3,
    )}\n`,
  );
  process.stdout.write(
    `\nL2 = HTB root qdisc byte counters (what tc shapes); error = (L2 steady - limit) / limit;\n` +
      `steady = from 2 s after the start to the last sample with a backlog in the shaper (the data's end);\n` +
      `goodput = iperf3's TCP payload rate (whole test, received), expected about ${fixed(GOODPUT_SHARE * 100)} % of L2 (1448 of 1514 bytes per frame)\n`,
  );
  const differ = rows.filter((r) => !r.error && Math.abs(r.steadyError! - r.l2SummarySteadyError!) >= 0.001);
  for (const r of differ) {
    process.stdout.write(
      `note: ${r.device} ${r.direction} ${r.limit}: l2Summary's window (to the counter's last move, draining tail included) reads ` +
        `${mbit(r.l2SummarySteadyBps!)} Mbit/s (${signedPct(r.l2SummarySteadyError!)})\n`,
    );
  }
  process.stdout.write(`load average at end: ${loadText(mach.loadEnd)} (start ${loadText(mach.loadStart)})\n`);
  const file = writeResult('accuracy', {
    kind: 'accuracy',
    date: new Date().toISOString(),
    machine: mach,
    method: {
      seconds,
      sampleIntervalMs: 100,
      steadyFromS: 2,
      steadyEnd: 'the last sample with a backlog in the HTB root (l2Summary\'s own end, where the counter last moved, is in l2SummarySteady*)',
      traffic: 'one iperf3 TCP stream (cubic); egress: container sends (-R), ingress: peer sends',
      applied: 'parseAnnotations(kubernetes.io/<direction>-bandwidth) + applyQos with the default config, as the OCI hook',
      macvlan: 'macvlanPair peer: parent (macvlan child in the container, the parent veth\'s far end as the peer)',
      goodputShareExpected: GOODPUT_SHARE,
    },
    rows,
  });
  process.stdout.write(`results: ${file}\n`);
  return rows.every((r) => !r.error);
}

let ok = false;
try {
  ok = await main();
} catch (e) {
  process.stderr.write(`accuracy: ${(e as Error).stack ?? String(e)}\n`);
} finally {
  try {
    await cleanupAll();
  } catch (e) {
    ok = false;
    process.stderr.write(`accuracy: cleanup: ${(e as Error).message}\n`);
  }
}
process.exitCode = ok ? 0 : 1;
