/**
 * The netqos NRI plugin (dist/netqos-nri.cjs, `npm run build`) in a containerd lab, both ways a
 * node runs it:
 *
 * - external: `node dist/netqos-nri.cjs --socket <lab NRI socket> --config <lab config> --lock <lab lock>`,
 *   started by the test in the lab netns (as a DaemonSet pod with hostNetwork would run);
 * - pre-installed: an executable `10-netqos` in the lab's plugin_path, launched by containerd at
 *   its start with the connection on fd 3, NRI_PLUGIN_{SOCKET,NAME,IDX} as its whole environment
 *   (no PATH) and stdout/stderr on /dev/null: the wrapper calls node by absolute path.
 *
 * Both use the lab's own config file (log file and level) and lock path, never /etc/netqos or
 * /run/netqos. Plus read-backs of what the plugin did in a pod's namespace (tc), independent of
 * netqos' own parsers.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { run } from '../../src/kernel/runner.js';
import { bin, type Background, type ContainerdLab } from './containerd.js';

export const NRI_BUNDLE = resolve(dirname(fileURLToPath(import.meta.url)), '../../dist/netqos-nri.cjs');
export const PLUGIN_FILE = '10-netqos';

/** why the plugin cannot be tested, or undefined */
export function pluginUnavailable(): string | undefined {
  return existsSync(NRI_BUNDLE) ? undefined : `${NRI_BUNDLE} missing: run npm run build`;
}

export interface PluginFiles {
  config: string;
  lock: string;
  log: string;
}

/** the lab's plugin config (log file + level, plus `extra` fields) and lock path */
export function pluginFiles(lab: ContainerdLab, extra: Record<string, unknown> = {}): PluginFiles {
  const dir = join(lab.dir, 'netqos');
  mkdirSync(dir, { recursive: true });
  const files = { config: join(dir, 'config.json'), lock: join(dir, 'nri.lock'), log: join(dir, 'netqos-nri.log') };
  writeFileSync(files.config, `${JSON.stringify({ log: { file: files.log, level: 'debug' }, ...extra })}\n`);
  return files;
}

/** Starts the external daemon against the lab's NRI socket. */
export function startExternalPlugin(lab: ContainerdLab, files: PluginFiles, extraArgs: readonly string[] = []): Background {
  return lab.startBackground(process.execPath, [NRI_BUNDLE, '--socket', lab.nriSocket, '--config', files.config, '--lock', files.lock, ...extraArgs], {
    comm: 'node',
    logFile: join(lab.dir, 'netqos', `external-${Date.now()}.out`),
  });
}

/** The pre-installed plugin's wrapper: absolute paths only (containerd gives it no PATH). */
export function preinstalledScript(files: PluginFiles): string {
  return `#!/bin/sh\n# netqos NRI plugin for the e2e lab (test/support/containerd-nri.ts)\nexec ${process.execPath} ${NRI_BUNDLE} --config ${files.config} --lock ${files.lock}\n`;
}

/** containerd's log lines since `from` that name the plugin */
export function pluginLines(lab: ContainerdLab, from = 0): string[] {
  return lab
    .log(from)
    .split('\n')
    .filter((l) => l.includes('netqos'));
}

/**
 * Waits until containerd lists the plugin in its invocation order (`  #1: "10-netqos" (...)`),
 * which both 2.1 and 1.7 log once the plugin has been synchronized, for external and launched
 * plugins alike, after log offset `from`.
 */
export async function waitPluginReady(lab: ContainerdLab, from = 0, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const line = pluginLines(lab, from).find((l) => /#\d+: \\"10-netqos\\"/.test(l));
    if (line) return line;
    if (Date.now() > deadline) {
      throw new Error(`the netqos plugin did not synchronize with containerd within ${timeoutMs} ms; containerd said:\n${pluginLines(lab, from).slice(-8).join('\n')}`);
    }
    await sleep(50);
  }
}

/** the plugin's JSON-lines log records */
export function pluginLog(files: PluginFiles): { msg?: string; level?: number | string; [k: string]: unknown }[] {
  let text = '';
  try {
    text = readFileSync(files.log, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      try {
        return JSON.parse(l) as { msg?: string };
      } catch {
        return { msg: l };
      }
    });
}

// ------------------------------------------------------------------------------------- tc read-back

export interface TcQdisc {
  kind: string;
  handle: string;
  root?: boolean;
  parent?: string;
  options?: Record<string, unknown>;
}

export interface Shaping {
  /** qdiscs on eth0 */
  eth0: TcQdisc[];
  /** HTB class rates on eth0, bit/s */
  eth0Rates: number[];
  /** ifb devices in the namespace */
  ifbs: string[];
  /** HTB class rates on each ifb, bit/s */
  ifbRates: Record<string, number[]>;
  ifbQdiscs: Record<string, TcQdisc[]>;
}

/** "10Mbit" / "500Kbit" / "1Gbit" / "12345bit" -> bit/s */
export function tcRate(text: string): number {
  const m = /^([\d.]+)([KMGT]?)bit$/.exec(text);
  if (!m) throw new Error(`not a tc rate: ${text}`);
  const mult = { '': 1, K: 1e3, M: 1e6, G: 1e9, T: 1e12 }[m[2] as '' | 'K' | 'M' | 'G' | 'T'];
  return Number(m[1]) * mult;
}

async function inNs(netnsPath: string, tool: 'ip' | 'tc', args: readonly string[]): Promise<string> {
  const r = await run(bin('nsenter'), [`--net=${netnsPath}`, bin(tool), ...args], { timeoutMs: 5000, allowFail: true });
  if (r.code !== 0) throw new Error(`${tool} ${args.join(' ')} in ${netnsPath}: ${r.stderr.trim()}`);
  return r.stdout;
}

function htbRates(classText: string): number[] {
  const out: number[] = [];
  for (const line of classText.split('\n')) {
    const m = /^class htb \S+ .*\brate (\S+)/.exec(line.trim());
    if (m?.[1]) out.push(tcRate(m[1]));
  }
  return out;
}

/** What is configured in a pod's namespace: eth0's qdiscs and HTB rates, the ifbs and theirs. */
export async function readShaping(netnsPath: string): Promise<Shaping> {
  const eth0 = JSON.parse((await inNs(netnsPath, 'tc', ['-j', 'qdisc', 'show', 'dev', 'eth0'])) || '[]') as TcQdisc[];
  const eth0Rates = htbRates(await inNs(netnsPath, 'tc', ['class', 'show', 'dev', 'eth0']));
  const links = JSON.parse((await inNs(netnsPath, 'ip', ['-j', '-d', 'link', 'show'])) || '[]') as { ifname: string; linkinfo?: { info_kind?: string } }[];
  const ifbs = links.filter((l) => l.linkinfo?.info_kind === 'ifb').map((l) => l.ifname);
  const ifbRates: Record<string, number[]> = {};
  const ifbQdiscs: Record<string, TcQdisc[]> = {};
  for (const i of ifbs) {
    ifbRates[i] = htbRates(await inNs(netnsPath, 'tc', ['class', 'show', 'dev', i]));
    ifbQdiscs[i] = JSON.parse((await inNs(netnsPath, 'tc', ['-j', 'qdisc', 'show', 'dev', i])) || '[]') as TcQdisc[];
  }
  return { eth0, eth0Rates, ifbs, ifbRates, ifbQdiscs };
}

/** nothing of netqos: no HTB/ingress/clsact on eth0 and no ifb */
export function unshaped(s: Shaping): boolean {
  return s.ifbs.length === 0 && s.eth0.every((q) => q.kind !== 'htb' && q.kind !== 'ingress' && q.kind !== 'clsact' && q.kind !== 'tbf');
}

/** polls readShaping until `ok` holds (the plugin re-applies in the background after Synchronize) */
export async function waitShaping(netnsPath: string, ok: (s: Shaping) => boolean, timeoutMs = 10_000): Promise<Shaping> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await readShaping(netnsPath);
    if (ok(s)) return s;
    if (Date.now() > deadline) throw new Error(`shaping in ${netnsPath} not as expected within ${timeoutMs} ms: ${JSON.stringify(s)}`);
    await sleep(100);
  }
}
