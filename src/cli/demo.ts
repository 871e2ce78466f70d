/**
 * `netqos demo [--seconds N]`: shaping shown on this machine without any container runtime. Two
 * namespaces of its own, egress 10M and ingress 20M applied to side a exactly as the OCI hook
 * applies them, iperf3 each way, and the layer-2 rate read from our HTB's byte counters next to
 * the configured rate and the TCP goodput. Everything is removed at the end, on errors, and on
 * SIGINT / SIGTERM.
 */
import type { Config } from '../domain/config.js';
import { NetqosError, oneLine } from '../domain/errors.js';
import type { QosSpec } from '../domain/spec.js';
import { applyQos, removeQos } from '../engine.js';
import { readQdiscStats } from '../kernel/stats.js';
import { toolPath } from '../kernel/tools.js';
import { ROOT_HANDLE } from '../plan/names.js';
import type { Shaped } from '../plan/ops.js';
import { renderShaped } from './apply.js';
import { booleanFlag, invalidFlag, stringFlag, type ParsedArgs } from './args.js';
import type { Command, Io } from './command.js';
import { loadConfig } from './config.js';
import { runClient, startServer } from './demo-iperf.js';
import { ADDR_A, ADDR_B, DEMO_DEV, Lab } from './demo-lab.js';
import { sampleDuring, steadyRate } from './demo-rate.js';
import { formatPercent, formatRate, formatTable } from './table.js';

export const DEMO_SPEC: QosSpec = { egress: { rateBps: 10e6 }, ingress: { rateBps: 20e6 } };
const SAMPLE_MS = 250;
/** signals that end the demo early, cleanly (exit 128 + number); a closed terminal sends SIGHUP */
const SIGNALS: Readonly<Record<string, number>> = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };
/** the steady state starts here: slow start and the initial burst are over */
const STEADY_FROM_MS = 1000;

export interface DirectionResult {
  direction: 'egress' | 'ingress';
  /** who sends to whom */
  path: string;
  shapedOn: string;
  configuredBps: number;
  measuredL2Bps: number;
  /** (measured - configured) / configured */
  error: number;
  goodputBps: number;
  steadySeconds: number;
}

export function readSeconds(args: ParsedArgs): number {
  const text = stringFlag(args, 'seconds');
  if (text === undefined) return 4;
  if (!/^[0-9]+$/.test(text) || Number(text) < 2 || Number(text) > 60) {
    throw invalidFlag('seconds', text, 'not a whole number of seconds from 2 to 60', 'use a value such as "4"');
  }
  return Number(text);
}

async function rootBytes(lab: Lab, dev: string): Promise<number> {
  const stats = (await readQdiscStats(lab.refA, [dev])).get(dev) ?? [];
  const root = stats.find((q) => q.parent === 'root' && q.handle === ROOT_HANDLE);
  if (root?.bytes === undefined) throw new NetqosError('KERNEL', `no HTB root ${ROOT_HANDLE} with counters on ${dev} in ${lab.a}`);
  return root.bytes;
}

async function measure(lab: Lab, shaped: Shaped, seconds: number): Promise<DirectionResult> {
  const egress = shaped.direction === 'egress';
  // the server always runs in b; egress: a sends to it, ingress: it sends to a (-R)
  await startServer(lab, lab.refB, ADDR_B, shaped.direction);
  const { samples, result } = await sampleDuring(
    () => rootBytes(lab, shaped.shapedOn),
    SAMPLE_MS,
    () => runClient(lab, lab.refA, ADDR_B, seconds, !egress),
  );
  const steady = steadyRate(samples, STEADY_FROM_MS);
  return {
    direction: shaped.direction,
    path: egress ? `a -> b` : `b -> a`,
    shapedOn: shaped.shapedOn,
    configuredBps: shaped.rateBps,
    measuredL2Bps: steady.bps,
    error: (steady.bps - shaped.rateBps) / shaped.rateBps,
    goodputBps: result.goodputBps,
    steadySeconds: steady.seconds,
  };
}

export function renderResults(results: readonly DirectionResult[]): string {
  return formatTable(
    ['DIRECTION', 'TRAFFIC', 'SHAPED ON', 'CONFIGURED', 'MEASURED L2', 'ERROR', 'GOODPUT', 'GOODPUT/L2'],
    results.map((r) => [
      r.direction,
      r.path,
      r.shapedOn,
      formatRate(r.configuredBps),
      formatRate(r.measuredL2Bps),
      formatPercent(r.error),
      formatRate(r.goodputBps),
      `${((r.goodputBps / r.measuredL2Bps) * 100).toFixed(1)} %`,
    ]),
    ['left', 'left', 'left', 'right', 'right', 'right', 'right', 'right'],
  );
}

async function runDemo(lab: Lab, seconds: number, config: Config, say: (text: string) => void): Promise<DirectionResult[]> {
  say(`setting up ${lab.a} and ${lab.b}: veth ${DEMO_DEV}, ${ADDR_A} <-> ${ADDR_B}\n`);
  await lab.create();
  // the hook's call: its spec, its config values
  const applied = await applyQos(lab.refA, DEMO_SPEC, { defaultLatencyUs: config.queueLatencyUs, timeoutMs: config.hookTimeoutMs });
  say(`shaped ${lab.a} as the OCI hook does for egress-bandwidth=10M, ingress-bandwidth=20M:\n${renderShaped(applied.shaped)}`);
  say(`iperf3 (TCP) ${seconds} s each way; L2 rate from the HTB byte counters every ${SAMPLE_MS} ms, steady state from t=1 s\n`);
  const results: DirectionResult[] = [];
  for (const direction of ['egress', 'ingress'] as const) {
    const shaped = applied.shaped.find((s) => s.direction === direction && s.dev === DEMO_DEV);
    if (!shaped) throw new NetqosError('KERNEL', `applyQos did not shape ${direction} of ${DEMO_DEV}`);
    results.push(await measure(lab, shaped, seconds));
  }
  say(renderResults(results));
  const removed = await removeQos(lab.refA);
  say(`removed ${removed.removed} objects from ${lab.a} as the hook does at poststop\n`);
  return results;
}

export const demo: Command = {
  spec: {
    name: 'demo',
    usage: 'netqos demo [--seconds N] [--json]',
    flags: { seconds: { type: 'string' }, json: { type: 'boolean' } },
    maxPositionals: 0,
  },
  summary: 'shape two throw-away namespaces and measure it with iperf3',
  help: [
    'Creates two namespaces of its own (nqdemo-<id>-a / -b, a veth between them), applies egress 10M',
    'and ingress 20M to side a exactly as the OCI hook does, runs iperf3 each way and prints the',
    'configured rate, the layer-2 rate measured from the HTB byte counters and the TCP goodput',
    '(about 95.6 % of L2 at MTU 1500). Removes everything afterwards, also on Ctrl-C. Needs root',
    'and iperf3, no container runtime.',
    '',
    '  --seconds N   length of each iperf3 run, 2 to 60 (default 4)',
    '  --json        machine-readable result',
  ].join('\n'),
  async run(args, io) {
    const seconds = readSeconds(args);
    const json = booleanFlag(args, 'json');
    toolPath('iperf3'); // before anything is created: a missing tool is one clear line
    const config = loadConfig(io);
    const say = (text: string): void => {
      if (!json) io.out(text);
    };
    const lab = new Lab();
    let interrupted = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (interrupted) return; // a second Ctrl-C while cleaning up: finish cleaning
      interrupted = true;
      io.err(`netqos: demo interrupted by ${signal}: removing ${lab.a} and ${lab.b}\n`);
      void lab.destroy().finally(() => process.exit(128 + (SIGNALS[signal] ?? 15)));
    };
    for (const signal of Object.keys(SIGNALS)) process.on(signal, onSignal);
    let results: DirectionResult[] = [];
    let failure: unknown;
    try {
      results = await runDemo(lab, seconds, config, say);
    } catch (e) {
      failure = e;
    }
    const problems = await lab.destroy();
    if (interrupted) await new Promise(() => undefined); // the signal handler reports and exits
    for (const signal of Object.keys(SIGNALS)) process.off(signal, onSignal);
    const left = problems.length > 0 ? `; cleanup incomplete: ${problems.join('; ')}` : '';
    if (failure !== undefined) {
      const code = failure instanceof NetqosError ? failure.code : 'KERNEL';
      throw new NetqosError(code, `demo failed: ${oneLine(failure)}${left}`, { cause: failure });
    }
    if (left) throw new NetqosError('KERNEL', `demo measured, but${left.slice(1)}`);
    if (json) io.out(`${JSON.stringify({ namespaces: [lab.a, lab.b], seconds, results }, null, 2)}\n`);
    else io.out(`deleted ${lab.a} and ${lab.b}: nothing left behind\n`);
    return 0;
  },
};
