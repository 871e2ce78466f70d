/**
 * `netqos doctor [--json]`: is this node ready for netqos? Kernel features (probed in a
 * throw-away namespace), tools, Node.js, container runtimes, the OCI hook file and the config.
 * Exit 1 when something required is missing or broken.
 */
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { readConfigFile } from '../config-file.js';
import { oneLine } from '../domain/errors.js';
import { probe, REQUIRED } from '../kernel/probe.js';
import { run } from '../kernel/runner.js';
import { hasTool, TOOL_DIRS, toolPath, type Tool } from '../kernel/tools.js';
import { booleanFlag } from './args.js';
import type { Command } from './command.js';
import { configPath } from './config.js';
import { MIN_NODE } from './version.js';
import {
  configCheck,
  hookCheck,
  kernelChecks,
  nodeCheck,
  renderDoctorJson,
  renderDoctorTable,
  report,
  runtimeChecks,
  toolChecks,
  type ConfigFound,
  type HookFile,
  type RuntimeFound,
  type ToolFound,
} from './doctor-report.js';

const TOOLS: readonly (Omit<ToolFound, 'path'> & { name: Tool })[] = [
  { name: 'ip', required: true, use: 'links and ifbs', pkg: 'iproute2' },
  { name: 'tc', required: true, use: 'qdiscs, classes, filters', pkg: 'iproute2' },
  { name: 'nsenter', required: true, use: 'enters a container\'s namespace', pkg: 'util-linux' },
  { name: 'unshare', required: true, use: 'the kernel probe', pkg: 'util-linux' },
  { name: 'iperf3', required: false, use: 'traffic for netqos demo', pkg: 'iperf3' },
];
const RUNTIMES = ['podman', 'crun', 'runc', 'containerd'];
export const HOOK_FILE = '50-netqos.json';
export const HOOK_DIRS = ['/usr/share/containers/oci/hooks.d', '/etc/containers/oci/hooks.d'];

async function probed(): Promise<Record<string, boolean> | { error: string }> {
  try {
    return (await probe()).features;
  } catch (e) {
    return { error: oneLine(e) };
  }
}

function findProgram(name: string): string | undefined {
  for (const dir of TOOL_DIRS) {
    try {
      accessSync(`${dir}/${name}`, constants.X_OK);
      return `${dir}/${name}`;
    } catch {
      // not here
    }
  }
  return undefined;
}

async function runtime(name: string): Promise<RuntimeFound> {
  const path = findProgram(name);
  if (path === undefined) return { name };
  const res = await run(path, ['--version'], { allowFail: true, timeoutMs: 5000, env: process.env }).catch(() => undefined);
  const version = res?.code === 0 ? res.stdout.trim().split('\n', 1)[0] : undefined;
  return version ? { name, path, version } : { name, path };
}

function hookFiles(): HookFile[] {
  return HOOK_DIRS.map((d) => `${d}/${HOOK_FILE}`)
    .filter((p) => existsSync(p))
    .map((path) => {
      let hook: { path?: unknown; args?: unknown };
      try {
        hook = (JSON.parse(readFileSync(path, 'utf8')) as { hook?: typeof hook }).hook ?? {};
      } catch (e) {
        return { path, problem: `not valid JSON (${oneLine(e)})` };
      }
      const program = typeof hook.path === 'string' ? hook.path : undefined;
      if (!program) return { path, problem: 'no hook.path' };
      const script = Array.isArray(hook.args) ? hook.args.find((a): a is string => typeof a === 'string' && a.startsWith('/')) : undefined;
      const command = [program, script].filter(Boolean).join(' ');
      for (const file of [program, script]) {
        if (file !== undefined && !existsSync(file)) return { path, command, problem: `it runs ${file}, which does not exist` };
      }
      return { path, command };
    });
}

function config(): ConfigFound {
  const path = configPath();
  if (!existsSync(path)) return { path, state: 'absent' };
  try {
    return { path, state: 'valid', config: readConfigFile(path) };
  } catch (e) {
    return { path, state: 'invalid', error: oneLine(e) };
  }
}

export const doctor: Command = {
  spec: { name: 'doctor', usage: 'netqos doctor [--json]', flags: { json: { type: 'boolean' } }, maxPositionals: 0 },
  summary: 'check the kernel, tools, runtimes, hook file and config',
  help: [
    'Probes the kernel features netqos uses (in a throw-away namespace), and looks for the tools,',
    'Node.js, container runtimes, the OCI hook file and the config. Exits 1 when a required part',
    `is missing or broken. Required kernel features: ${REQUIRED.join(' ')}.`,
    '',
    '  --json    machine-readable output',
  ].join('\n'),
  async run(args, io) {
    const [features, runtimes] = await Promise.all([probed(), Promise.all(RUNTIMES.map(runtime))]);
    const tools = TOOLS.map((t) => (hasTool(t.name) ? { ...t, path: toolPath(t.name) } : t));
    const r = report([
      ...kernelChecks(REQUIRED, features),
      ...toolChecks(tools),
      nodeCheck(process.versions.node, MIN_NODE),
      ...runtimeChecks(runtimes),
      hookCheck(HOOK_FILE, HOOK_DIRS, hookFiles()),
      configCheck(config()),
    ]);
    io.out(booleanFlag(args, 'json') ? renderDoctorJson(r) : renderDoctorTable(r));
    return r.ok ? 0 : 1;
  },
};
