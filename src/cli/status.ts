/** `netqos status <target> [--json]`: configured rates and live counters per interface and direction. */
import { observe } from '../engine.js';
import { readHtbClasses } from '../kernel/classes.js';
import { assertNotHost, type NetnsRef } from '../kernel/netns.js';
import { readQdiscStats } from '../kernel/stats.js';
import { booleanFlag } from './args.js';
import type { Command } from './command.js';
import { buildStatus, renderStatusJson, renderStatusTable, shapedTrees, type StatusReport } from './status-report.js';
import { describeTarget, parseTarget, resolveTarget, TARGET_FLAGS, TARGET_USAGE } from './target.js';

export async function readStatus(ref: NetnsRef, target: string): Promise<StatusReport> {
  assertNotHost(ref);
  const observed = await observe(ref);
  const devs = [...new Set(shapedTrees(observed).map((t) => t.dev))];
  // counters (-s) for each child class
  const [stats, classes] = await Promise.all([readQdiscStats(ref, devs), readHtbClasses(ref, devs, { counters: true })]);
  return buildStatus({ target, observed, stats, classes });
}

export const status: Command = {
  spec: {
    name: 'status',
    usage: `netqos status ${TARGET_USAGE} [--json]`,
    flags: { ...TARGET_FLAGS, json: { type: 'boolean' } },
    maxPositionals: 1,
  },
  summary: 'show configured rates and live counters of a container',
  help: [
    'Shows, per interface and direction (the container\'s view), the configured rate and burst of',
    'netqos\'s HTB class and the live counters: bytes, packets, drops, overlimits, backlog.',
    'Egress is shaped on the interface itself, ingress on its ifb nqi<ifindex>.',
    'With classes (netqos.io/<dir>-classes) a second table shows each class: its id, its place',
    'in the annotation (#1, #2, ...: the kernel keeps no names), default or unshaped, what it',
    'matches, rate, ceil, prio and its own counters.',
    '',
    '  --json    machine-readable output',
  ].join('\n'),
  async run(args, io) {
    const target = parseTarget(this.spec, args);
    const ref = await resolveTarget(target);
    const report = await readStatus(ref, describeTarget(target));
    io.out(booleanFlag(args, 'json') ? renderStatusJson(report) : renderStatusTable(report));
    return 0;
  },
};
