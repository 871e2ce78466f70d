/**
 * Entry point of the netqos NRI plugin (bundled by esbuild into dist/netqos-nri.cjs):
 *
 *   netqos-nri [--socket /var/run/nri/nri.sock] [--index 10]     external daemon
 *   /opt/nri/plugins/10-netqos  (NRI_PLUGIN_SOCKET=3 ...)          launched by the runtime
 *
 * Takes the node's lock (one plugin per node), loads the overrides kept by an earlier instance,
 * opens the local API (api-server.ts), then serves the runtime until it is stopped (SIGTERM,
 * SIGINT) or, pre-installed, until the runtime closes the connection. An API that cannot be
 * opened is logged and the daemon shapes pods anyway: pods must not go unshaped for it.
 *
 * Logs: src/log.ts's JSON lines (pino's format) to the config's log file, not pino itself.
 * The daemon writes a few records per pod, so pino's speed buys nothing; its asynchronous
 * destination could lose the last records of a plugin the runtime SIGKILLs, and its module
 * graph would be the only reason for a second logging format in the bundle. A launched plugin's
 * stdout and stderr are /dev/null, so the file is the only place its records can go; lines that
 * stop the daemon (bad arguments, the lock taken) also go to stderr for an operator.
 */
import { readFileSync } from 'node:fs';
import type { Config } from '../domain/config.js';
import { oneLine } from '../domain/errors.js';
import { createLogger, type Logger } from '../log.js';
import { DAEMON_SPEC, parseDaemonArgs, type DaemonArgs } from './args.js';
import { effectiveConfig, type EffectiveConfig } from './config.js';
import { runDaemon } from './daemon.js';
import { acquireLock, type Lock } from './lock.js';
import { NetqosPlugin } from './plugin.js';
import { join } from 'node:path';
import { OVERRIDES_FILE } from './api-protocol.js';
import { startApi, type ApiServer } from './api-server.js';
import { OverrideStore } from './overrides.js';

const say = (line: string): void => {
  try {
    process.stderr.write(`netqos-nri: ${line}\n`);
  } catch {
    // stderr closed (launched by a runtime): the log file has it
  }
};

/** A logger whose file and level follow the config, which Configure may change. */
function followingLogger(config: Config): { log: Logger; follow: (c: Config) => void } {
  let target = createLogger({ ...config.log, name: 'netqos-nri' });
  let key = JSON.stringify(config.log);
  const log: Logger = {
    debug: (f, m) => target.debug(f, m),
    info: (f, m) => target.info(f, m),
    warn: (f, m) => target.warn(f, m),
    error: (f, m) => target.error(f, m),
  };
  const follow = (c: Config): void => {
    if (JSON.stringify(c.log) === key) return;
    key = JSON.stringify(c.log);
    target = createLogger({ ...c.log, name: 'netqos-nri' });
  };
  return { log, follow };
}

function readConfigText(path: string): { text?: string; problem?: string } {
  try {
    return { text: readFileSync(path, 'utf8') };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return {};
    return { problem: `invalid config ${path}: cannot read it (${code ?? oneLine(e)}); using the defaults` };
  }
}

function loadConfig(args: DaemonArgs, dropIn: string): EffectiveConfig {
  const file = readConfigText(args.configPath);
  const eff = effectiveConfig(file.text, args.configPath, dropIn);
  if (file.problem) eff.problems.unshift(file.problem);
  return eff;
}

async function main(): Promise<number> {
  let args: DaemonArgs;
  try {
    args = parseDaemonArgs(process.argv.slice(2), process.env);
  } catch (e) {
    say(oneLine(e));
    return 2;
  }
  if (args.help) {
    process.stdout.write(`usage: ${DAEMON_SPEC.usage}\n`);
    return 0;
  }
  let current = loadConfig(args, '');
  const { log, follow } = followingLogger(current.config);
  for (const p of current.problems) {
    log.error({}, p);
    say(p);
  }
  process.on('uncaughtException', (e) => {
    log.error({ err: oneLine(e), stack: e.stack }, 'internal error: exiting');
    process.exit(1);
  });

  const mode = args.connection.mode;
  let lock: Lock;
  try {
    lock = await acquireLock(args.lockPath, { pid: process.pid, mode });
  } catch (e) {
    log.error({ err: oneLine(e) }, 'not started');
    say(oneLine(e));
    return 1;
  }
  const stop = new AbortController();
  lock.watch((holder) => {
    log.error({ lock: args.lockPath, holder }, 'the node lock was taken over by another netqos NRI plugin: stopping');
    stop.abort();
  });
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.on(sig, () => {
      log.info({ signal: sig }, 'stopping');
      stop.abort();
    });
  }

  const overrides = new OverrideStore(join(args.stateDir, OVERRIDES_FILE));
  const loadProblem = overrides.load();
  if (loadProblem !== undefined) log.error({}, loadProblem);
  const plugin = new NetqosPlugin({
    log,
    overrides,
    config: () => current.config,
    configure: (req) => {
      current = loadConfig(args, req.config);
      follow(current.config);
      for (const p of current.problems) log.error({}, p);
    },
  });
  const where = args.connection.mode === 'external' ? { socket: args.connection.socketPath } : { fd: args.connection.fd };
  log.info({ mode, ...where, plugin: args.name, idx: args.idx, lock: args.lockPath }, 'started');
  const api: ApiServer | undefined = await startApi(args.apiPath, plugin, log).catch((e: unknown) => {
    log.error({ api: args.apiPath, err: oneLine(e) }, 'local API not available: netqos update --pod will not reach this daemon');
    return undefined;
  });
  if (api) log.info({ api: api.path, overrides: overrides.path, kept: overrides.all().size }, 'local API listening');
  await runDaemon({ connection: args.connection, name: args.name, idx: args.idx, handlers: plugin, log, signal: stop.signal });
  // let a pod operation under way finish its ip/tc batch (bounded: we are being stopped)
  await Promise.race([plugin.idle(), new Promise((r) => setTimeout(r, 2000).unref())]);
  await api?.close();
  await lock.release();
  log.info({}, 'stopped');
  return 0;
}

void main().then((code) => {
  // pending timers (a background re-apply) must not keep a stopped daemon alive
  process.exit(code);
});
