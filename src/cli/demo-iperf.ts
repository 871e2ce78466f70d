/**
 * Bounded iperf3 runs between the demo's namespaces: a one-test server (`-s -1`, daemonized with
 * a pid file so the lab can kill it by PID) and a client under a deadline, with its PID tracked.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NetqosError } from '../domain/errors.js';
import { inNetns, type NetnsRef } from '../kernel/netns.js';
import type { Lab } from './demo-lab.js';

const PORT = 5201;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** /proc/<pid>/net/tcp lists the sockets of that process's namespace: state 0A is LISTEN */
function listening(pid: number, port: number): boolean {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  try {
    return readFileSync(`/proc/${pid}/net/tcp`, 'utf8')
      .split('\n')
      .slice(1)
      .some((line) => {
        const cols = line.trim().split(/\s+/);
        return cols[1]?.endsWith(hex) === true && cols[3] === '0A';
      });
  } catch {
    return false;
  }
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-2).join(' | ');
  } catch {
    return 'no log';
  }
}

/** Starts `iperf3 -s -1` bound to addr in ref; resolves once it listens. */
export async function startServer(lab: Lab, ref: NetnsRef, addr: string, tag: string): Promise<void> {
  const pidFile = join(lab.dir, `${tag}.pid`);
  const logFile = join(lab.dir, `${tag}.log`);
  await inNetns(ref, 'iperf3', ['-s', '-1', '-D', '-B', addr, '-p', String(PORT), '-I', pidFile, '--logfile', logFile]);
  const deadline = Date.now() + 5000;
  let pid = 0;
  while (Date.now() < deadline) {
    // the daemon writes its pid file after forking: iperf3 -D returned before that
    const text = existsSync(pidFile) ? readFileSync(pidFile, 'utf8').replace(/\0/g, '').trim() : '';
    if (/^\d+$/.test(text)) {
      pid = Number(text);
      lab.track(pid, ['iperf3']);
      if (listening(pid, PORT)) return;
    }
    await sleep(10);
  }
  throw new NetqosError('TIMEOUT', `iperf3 server in ${tag} did not listen on ${addr}:${PORT} within 5 s (${tail(logFile)})`);
}

export interface ClientResult {
  /** TCP goodput the receiver counted, bit/s */
  goodputBps: number;
}

/** `iperf3 -c addr -t seconds [-R]` in ref, killed by its deadline or by the lab. */
export async function runClient(lab: Lab, ref: NetnsRef, addr: string, seconds: number, reverse: boolean): Promise<ClientResult> {
  const args = ['-c', addr, '-p', String(PORT), '-t', String(seconds), '-J', '--connect-timeout', '3000', ...(reverse ? ['-R'] : [])];
  let pid = 0;
  const res = await inNetns(ref, 'iperf3', args, {
    allowFail: true,
    timeoutMs: seconds * 1000 + 15_000,
    onSpawn: (p) => {
      pid = p;
      lab.track(p, ['nsenter', 'iperf3']);
    },
  });
  lab.untrack(pid);
  let json: { error?: string; end?: { sum_received?: { bits_per_second?: number } } };
  try {
    json = JSON.parse(res.stdout) as typeof json;
  } catch {
    throw new NetqosError('KERNEL', `iperf3 client failed (exit ${res.code}): ${res.stderr.trim().split('\n', 1)[0] || 'no output'}`);
  }
  if (json.error || res.code !== 0) throw new NetqosError('KERNEL', `iperf3 client failed (exit ${res.code}): ${json.error ?? 'no reason given'}`);
  return { goodputBps: json.end?.sum_received?.bits_per_second ?? 0 };
}
