/**
 * The demo's own little network: two namespaces nqdemo-<4 hex>-a / -b joined by a veth, with
 * addresses from 198.18.0.0/15 (benchmarking), and the processes started in them. destroy()
 * kills exactly those processes (by PID, after checking they are still ours) and deletes exactly
 * those namespaces, which frees every device, qdisc and ifb in them. Idempotent.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetqosError } from '../domain/errors.js';
import { inNetns, type NetnsRef } from '../kernel/netns.js';
import { run } from '../kernel/runner.js';
import { toolPath } from '../kernel/tools.js';

export const DEMO_PREFIX = 'nqdemo-';
export const DEMO_DEV = 'nqdemo0';
export const ADDR_A = '198.18.0.1';
export const ADDR_B = '198.18.0.2';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** comm and state of a process, or undefined when it is gone (or a zombie) */
function procComm(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = stat.lastIndexOf(')');
    const state = stat.slice(close + 2, close + 3);
    return state === 'Z' || state === 'X' ? undefined : stat.slice(stat.indexOf('(') + 1, close);
  } catch {
    return undefined;
  }
}

export class Lab {
  readonly id = randomBytes(2).toString('hex');
  readonly a = `${DEMO_PREFIX}${this.id}-a`;
  readonly b = `${DEMO_PREFIX}${this.id}-b`;
  readonly refA: NetnsRef = { path: `/run/netns/${this.a}` };
  readonly refB: NetnsRef = { path: `/run/netns/${this.b}` };
  /** pid files and logs of the iperf3 servers */
  readonly dir = mkdtempSync(join(tmpdir(), `${DEMO_PREFIX}${this.id}-`));
  /** namespaces this lab created: only these are ever deleted */
  private readonly made: string[] = [];
  /** pid -> the comms it may have (nsenter execs the program, so it starts as nsenter) */
  private readonly pids = new Map<number, readonly string[]>();
  private destroying: Promise<string[]> | undefined;

  async create(): Promise<void> {
    const ip = toolPath('ip');
    for (const ns of [this.a, this.b]) {
      if (existsSync(`/run/netns/${ns}`)) throw new NetqosError('KERNEL', `namespace ${ns} exists already; run the demo again`);
      await run(ip, ['netns', 'add', ns]);
      this.made.push(ns);
    }
    // created inside a, its peer straight into b: no name ever appears in the node's namespace
    const a = [
      'link set lo up',
      `link add ${DEMO_DEV} index 100 type veth peer name ${DEMO_DEV} netns ${this.b} index 101`,
      `addr add ${ADDR_A}/24 dev ${DEMO_DEV}`,
      `link set ${DEMO_DEV} up`,
    ];
    await inNetns(this.refA, 'ip', ['-batch', '-'], { input: `${a.join('\n')}\n` });
    const b = ['link set lo up', `addr add ${ADDR_B}/24 dev ${DEMO_DEV}`, `link set ${DEMO_DEV} up`];
    await inNetns(this.refB, 'ip', ['-batch', '-'], { input: `${b.join('\n')}\n` });
  }

  /** a process destroy() must kill if it still runs */
  track(pid: number, comms: readonly string[]): void {
    this.pids.set(pid, comms);
  }

  untrack(pid: number): void {
    this.pids.delete(pid);
  }

  /** Kills our processes, deletes our namespaces and files; resolves with what went wrong. */
  destroy(): Promise<string[]> {
    return (this.destroying ??= this.teardown());
  }

  private async teardown(): Promise<string[]> {
    const problems: string[] = [];
    const ours = (pid: number): boolean => {
      const comm = procComm(pid);
      return comm !== undefined && (this.pids.get(pid) ?? []).includes(comm);
    };
    for (const pid of this.pids.keys()) {
      if (!ours(pid)) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // exited meanwhile
      }
    }
    for (let i = 0; i < 100 && [...this.pids.keys()].some(ours); i++) await sleep(20);
    for (const pid of this.pids.keys()) if (ours(pid)) problems.push(`pid ${pid} still runs after SIGKILL`);
    this.pids.clear();
    const ip = toolPath('ip');
    for (const ns of this.made) {
      const r = await run(ip, ['netns', 'del', ns], { allowFail: true });
      if (r.code !== 0 && existsSync(`/run/netns/${ns}`)) problems.push(`ip netns del ${ns}: ${r.stderr.trim()}`);
    }
    this.made.length = 0;
    rmSync(this.dir, { recursive: true, force: true });
    return problems;
  }
}
