/**
 * Which network namespace a command works on: `--pid N`, `--netns PATH`, or a podman container
 * name or id (resolved to its PID with `podman inspect`). Exactly one of the three.
 */
import { existsSync } from 'node:fs';
import { NetqosError } from '../domain/errors.js';
import type { NetnsRef } from '../kernel/netns.js';
import { run } from '../kernel/runner.js';
import { toolPath } from '../kernel/tools.js';
import { invalidFlag, stringFlag, usageError, type CommandSpec, type FlagSpec, type ParsedArgs } from './args.js';

export const TARGET_FLAGS: Readonly<Record<string, FlagSpec>> = {
  pid: { type: 'string' },
  netns: { type: 'string' },
};

export const TARGET_USAGE = '(<container> | --pid PID | --netns PATH)';

export type Target = { pid: number } | { path: string } | { container: string };

/** Pure: the target the arguments name. */
export function parseTarget(spec: CommandSpec, args: ParsedArgs): Target {
  const pid = stringFlag(args, 'pid');
  const netns = stringFlag(args, 'netns');
  const container = args.positionals[0];
  const given = [pid, netns, container].filter((x) => x !== undefined).length;
  if (given === 0) throw usageError(spec, 'no target: name a container, or give --pid or --netns');
  if (given > 1) throw usageError(spec, 'more than one target: give one of a container, --pid and --netns');
  if (pid !== undefined) {
    if (!/^[1-9][0-9]{0,9}$/.test(pid) || Number(pid) > 2 ** 31 - 1) {
      throw invalidFlag('pid', pid, 'not a process id', 'use the PID of a process in the namespace, such as "1234"');
    }
    return { pid: Number(pid) };
  }
  if (netns !== undefined) {
    if (!netns.startsWith('/')) {
      throw invalidFlag('netns', netns, 'not an absolute path', 'use a namespace file such as "/run/netns/blue" or "/proc/1234/ns/net"');
    }
    return { path: netns };
  }
  const name = container ?? '';
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name)) {
    throw usageError(spec, `${JSON.stringify(name)} is not a container name or id`);
  }
  return { container: name };
}

export function describeTarget(t: Target): string {
  if ('pid' in t) return `pid ${t.pid}`;
  if ('path' in t) return `netns ${t.path}`;
  return `container ${t.container}`;
}

/** The namespace of a target; a container is looked up with podman. */
export async function resolveTarget(t: Target): Promise<NetnsRef> {
  if ('pid' in t) {
    if (!existsSync(`/proc/${t.pid}`)) throw new NetqosError('NOT_FOUND', `pid ${t.pid}: no such process`);
    return { pid: t.pid };
  }
  if ('path' in t) return { path: t.path };
  return { pid: await containerPid(t.container) };
}

async function inspect(name: string, format: string): Promise<string> {
  // the caller's environment, so CONTAINERS_CONF, CONTAINERS_STORAGE_CONF, XDG_RUNTIME_DIR work
  const res = await run(toolPath('podman'), ['inspect', '--type', 'container', '--format', format, name], {
    env: process.env,
    allowFail: true,
    timeoutMs: 15_000,
  });
  if (res.code !== 0) {
    throw new NetqosError('NOT_FOUND', `container ${name}: podman inspect failed: ${podmanReason(res.stderr) || `exit ${res.code}`}`);
  }
  return res.stdout.trim();
}

/** a podman container's full id: the identity its hook used (vethShaping "host") */
export async function containerId(name: string): Promise<string> {
  const id = await inspect(name, '{{.Id}}');
  if (!/^[0-9a-f]{12,128}$/.test(id)) throw new NetqosError('KERNEL', `container ${name}: podman inspect printed ${JSON.stringify(id)}, not a container id`);
  return id;
}

async function containerPid(name: string): Promise<number> {
  const text = await inspect(name, '{{.State.Pid}}');
  const res = { stdout: text };
  const pid = Number(res.stdout.trim());
  if (!Number.isInteger(pid) || pid < 0) {
    throw new NetqosError('KERNEL', `container ${name}: podman inspect printed ${JSON.stringify(res.stdout.trim())}, not a PID`);
  }
  if (pid === 0) throw new NetqosError('NOT_FOUND', `container ${name} is not running; start it first`);
  return pid;
}

/**
 * The reason in podman's stderr: its `Error: ...` line, else the first line, with logrus'
 * `time=... level=error msg="..."` reduced to the message.
 */
export function podmanReason(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  const line = lines.find((l) => l.startsWith('Error: ')) ?? lines[0] ?? '';
  const msg = /\bmsg="((?:[^"\\]|\\.)*)"/.exec(line)?.[1];
  return (msg !== undefined ? msg.replace(/\\(.)/g, '$1') : line).replace(/^Error: /, '');
}
