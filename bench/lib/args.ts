/**
 * Command line of `npm run bench` (pure). Full run: every limit, both directions, veth and
 * macvlan, every system, setup cost with 30 rounds and N = 1, 50, 200, 500. `--quick`: 10M and
 * 1G, shorter runs, 10 rounds, N = 1 and 50.
 */
import type { Kind } from './measure.js';
import type { Direction, SystemId } from './systems.js';
import { SYSTEMS } from './systems.js';
import type { Device } from './topo.js';

export const ALL_LIMITS = [1e6, 10e6, 100e6, 1e9, 5e9, 10e9] as const;
export const QUICK_LIMITS = [10e6, 1e9] as const;

export interface Options {
  quick: boolean;
  limits: number[];
  devices: Device[];
  directions: Direction[];
  systems: SystemId[];
  kinds: Kind[];
  /** TCP run length by limit */
  tcpSeconds: (limitBps: number) => number;
  rttSeconds: (limitBps: number) => number;
  udpSeconds: number;
  /** UDP floods run at limits up to this */
  udpUpTo: number;
  ceilingKinds: Kind[];
  /** the unshaped ceiling runs (once per device and direction) */
  ceiling: boolean;
  costRuns: number;
  scale: number[];
  repeat: number;
  /** results directory (default bench/results) */
  outDir?: string;
}

export const USAGE = `usage: npm run bench -- [--quick] [--only SYSTEM:DEVICE:DIRECTION:LIMIT] [--kinds tcp,rtt,udp | --kinds none]
       [--seconds S] [--cost-runs N] [--scale 1,50,200,500 | --no-scale] [--no-cost] [--repeat N] [--out DIR]
  --only   restrict the measured cases; each part may be * (e.g. netqos:veth:egress:10M, *:*:ingress:*)
           SYSTEM is netqos, cni-containerd, cni-tuned (the unshaped ceiling runs only without --only, or with --only unshaped:...)
  --kinds none  no traffic cases: only the setup cost and N targets
  --seconds  TCP run length for every limit (default 10 s, 8 s from 1G, 33 s at 1M for a 30 s window; --quick 5 s)`;

const LIMIT_TEXT: Record<string, number> = { '1M': 1e6, '10M': 10e6, '100M': 100e6, '1G': 1e9, '5G': 5e9, '10G': 10e9 };

export function limitFromText(text: string): number {
  const v = LIMIT_TEXT[text];
  if (v === undefined) throw new Error(`limit ${JSON.stringify(text)}: use one of ${Object.keys(LIMIT_TEXT).join(', ')}`);
  return v;
}

function intArg(name: string, text: string | undefined, min: number, max: number): number {
  const v = Number(text);
  if (!Number.isInteger(v) || v < min || v > max) throw new Error(`${name} wants an integer in ${min}..${max}, got ${JSON.stringify(text)}`);
  return v;
}

export function parseArgs(argv: readonly string[]): Options {
  const quick = argv.includes('--quick');
  let limits: number[] = [...(quick ? QUICK_LIMITS : ALL_LIMITS)];
  let devices: Device[] = ['veth', 'macvlan'];
  let directions: Direction[] = ['egress', 'ingress'];
  let systems: SystemId[] = SYSTEMS.filter((x) => x !== 'unshaped');
  let kinds: Kind[] = ['tcp', 'rtt', 'udp'];
  let seconds: number | undefined;
  let costRuns = quick ? 10 : 30;
  let scale = quick ? [1, 50] : [1, 50, 200, 500];
  let repeat = 1;
  let outDir: string | undefined;
  let ceiling = true;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value\n${USAGE}`);
      return v;
    };
    switch (a) {
      case '--quick':
        break;
      case '--only': {
        const parts = next().split(':');
        if (parts.length !== 4) throw new Error(`--only wants SYSTEM:DEVICE:DIRECTION:LIMIT (each may be *)\n${USAGE}`);
        const [sys, dev, dir, lim] = parts as [string, string, string, string];
        if (sys !== '*' && !(SYSTEMS as readonly string[]).includes(sys)) throw new Error(`--only: system ${sys}: use one of ${SYSTEMS.join(', ')}`);
        ceiling = sys === 'unshaped';
        if (sys !== '*') systems = sys === 'unshaped' ? [] : [sys as SystemId];
        if (dev !== '*') {
          if (dev !== 'veth' && dev !== 'macvlan') throw new Error(`--only: device ${dev}: use veth or macvlan`);
          devices = [dev];
        }
        if (dir !== '*') {
          if (dir !== 'egress' && dir !== 'ingress') throw new Error(`--only: direction ${dir}: use egress or ingress`);
          directions = [dir];
        }
        if (lim !== '*') limits = [limitFromText(lim)];
        break;
      }
      case '--kinds': {
        const v = next();
        if (v === 'none') {
          // setup cost only
          kinds = [];
          ceiling = false;
          break;
        }
        const ks = v.split(',');
        for (const k of ks) if (k !== 'tcp' && k !== 'rtt' && k !== 'udp') throw new Error(`--kinds: ${k}: use tcp, rtt, udp`);
        kinds = ks as Kind[];
        break;
      }
      case '--seconds':
        seconds = intArg('--seconds', next(), 4, 120);
        break;
      case '--cost-runs':
        costRuns = intArg('--cost-runs', next(), 0, 1000);
        break;
      case '--scale':
        scale = next()
          .split(',')
          .map((x) => intArg('--scale', x, 1, 1000));
        break;
      case '--no-scale':
        scale = [];
        break;
      case '--no-cost':
        costRuns = 0;
        scale = [];
        break;
      case '--repeat':
        repeat = intArg('--repeat', next(), 1, 10);
        break;
      case '--out':
        outDir = next();
        break;
      case '--help':
      case '-h':
        throw new Error(USAGE);
      default:
        throw new Error(`unknown argument ${a}\n${USAGE}`);
    }
  }
  // 1M: 33 s, so the steady window (2 s to the end less 0.25 s) is 30.75 s as issue 3 asks
  const tcpSeconds = (bps: number): number => seconds ?? (quick ? 5 : bps <= 1e6 ? 33 : bps >= 1e9 ? 8 : 10);
  // up to 100M the systems run side by side: a longer latency run costs little time there
  const rttSeconds = (bps: number): number => (quick ? 5 : bps > 100e6 ? 6 : 12);
  return {
    quick,
    limits,
    devices,
    directions,
    systems,
    kinds,
    tcpSeconds,
    rttSeconds,
    udpSeconds: quick ? 3 : 4,
    // --quick floods UDP only below 1G: one iperf3 UDP sender reaches about 1 to 1.9 Gbit/s on
    // these machines, so from 1G on the flood is not above the limit (the full run still tries)
    udpUpTo: quick ? 100e6 : Infinity,
    // --quick measures the ceiling with TCP only
    ceilingKinds: quick ? ['tcp'] : ['tcp', 'rtt'],
    ceiling,
    costRuns,
    scale,
    repeat,
    ...(outDir ? { outDir } : {}),
  };
}
