/**
 * `netqos update <target> [--egress RATE] ...`: changes the limits in force, in place (class and
 * leaf changes only: open connections keep going and follow the new rate). What is not given
 * stays as it is.
 *
 * Where the change is made:
 * - `--pod NS/NAME` (or a sandbox id): through the NRI daemon's local API; the daemon keeps the
 *   change as an override, so it survives the daemon's restarts.
 * - a container, `--pid` or `--netns` whose namespace the daemon shapes: through the daemon too,
 *   for the same reason.
 * - otherwise (no daemon, or a namespace it does not shape): on the namespace directly, with the
 *   limits in force read back from the kernel.
 */
import { updateQos } from '../engine.js';
import type { QosSpec } from '../domain/spec.js';
import { netnsIdentity, netnsPath } from '../kernel/netns.js';
import type { PodView } from '../nri/api-protocol.js';
import { renderShaped } from './apply.js';
import { stringFlag, usageError } from './args.js';
import type { Command } from './command.js';
import { loadConfig } from './config.js';
import { apiPath, listPods, noDaemon, updatePod } from './daemon-client.js';
import { formatRate, formatTable } from './table.js';
import { describeTarget, parseTarget, resolveTarget, TARGET_FLAGS, TARGET_USAGE } from './target.js';
import { readUpdateFlags, UPDATE_FLAGS, updateFields } from './update-flags.js';

export function renderPodSpec(view: PodView): string {
  const rows: string[][] = [];
  const burst = (b: number | undefined): string => (b === undefined ? 'derived' : `${formatRate(b)} bits`);
  const spec: QosSpec = view.spec;
  for (const dir of ['egress', 'ingress'] as const) {
    const l = spec[dir];
    rows.push(l ? [dir, formatRate(l.rateBps), burst(l.burstBits)] : [dir, 'unshaped', '-']);
  }
  const latency = spec.queueLatencyUs === undefined ? 'queue latency: the config\'s default' : `queue latency: ${spec.queueLatencyUs}us`;
  return `${formatTable(['DIRECTION', 'RATE', 'BURST'], rows, ['left', 'right', 'right'])}${latency}\n`;
}

const podLabel = (v: PodView): string => `pod ${v.namespace}/${v.name} (${v.id.slice(0, 12)})`;

export const update: Command = {
  spec: {
    name: 'update',
    usage:
      `netqos update (${TARGET_USAGE.slice(1, -1)} | --pod NS/NAME) [--egress RATE] [--ingress RATE] [--egress-burst BITS] ` +
      '[--ingress-burst BITS] [--queue-latency DURATION] [--api PATH]',
    flags: { ...TARGET_FLAGS, ...UPDATE_FLAGS, pod: { type: 'string' }, api: { type: 'string' } },
    maxPositionals: 1,
  },
  summary: 'change the limits in force, in place (open connections keep going)',
  help: [
    'Changes only what is given; everything else stays as it is in force. Only directions that are',
    'shaped can change (netqos apply shapes new ones). The change is made in place (HTB class and',
    'leaf queue), so open connections keep going and follow the new rate within a second.',
    '',
    '  --pod NS/NAME              a pod the netqos NRI daemon shapes ("default/web", or a sandbox id);',
    '                             the daemon keeps the change across its restarts until the pod ends',
    '  --egress RATE              new layer-2 rate out of the container ("20M", "1Gi")',
    '  --ingress RATE             new layer-2 rate into the container',
    '  --egress-burst BITS        new HTB burst in bits ("100k"); alone it applies to the rate in force',
    '  --ingress-burst BITS',
    '  --queue-latency DURATION   new leaf queue latency ("5ms")',
    '  --api PATH                 the daemon\'s socket; default $NETQOS_API or /run/netqos/api.sock',
    '',
    'A container, --pid or --netns target whose namespace the daemon shapes is updated through the',
    'daemon (so the change is kept); without a daemon netqos changes the namespace directly.',
  ].join('\n'),
  async run(args, io) {
    const updateSpec = readUpdateFlags(this.spec, args);
    const fields = updateFields(args);
    const api = apiPath(args);
    const pod = stringFlag(args, 'pod');
    if (pod !== undefined) {
      if (args.positionals.length > 0 || stringFlag(args, 'pid') !== undefined || stringFlag(args, 'netns') !== undefined) {
        throw usageError(this.spec, 'more than one target: give --pod, or one of a container, --pid and --netns');
      }
      const view = await updatePod(api, { pod, ...fields });
      if (view === undefined) throw noDaemon(api);
      io.out(`updated ${podLabel(view)} through the netqos NRI daemon (kept until the pod ends):\n${renderPodSpec(view)}`);
      return 0;
    }
    const target = parseTarget(this.spec, args);
    const ref = await resolveTarget(target);
    const identity = netnsIdentity(netnsPath(ref));
    const known = identity === undefined ? undefined : (await listPods(api))?.find((p) => p.identity === identity);
    if (known !== undefined) {
      const view = await updatePod(api, { pod: known.id, ...fields });
      if (view === undefined) throw noDaemon(api);
      io.out(`updated ${podLabel(view)} (${describeTarget(target)}) through the netqos NRI daemon (kept until the pod ends):\n${renderPodSpec(view)}`);
      return 0;
    }
    const config = loadConfig(io);
    const res = await updateQos(ref, updateSpec, { defaultLatencyUs: config.queueLatencyUs });
    io.out(`updated ${describeTarget(target)}:\n${renderShaped(res.shaped)}`);
    return 0;
  },
};
