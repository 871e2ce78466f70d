/**
 * How the daemon was started, from its argv and environment. Pure.
 *
 * - pre-installed: the runtime launched it from its plugin directory (/opt/nri/plugins/10-netqos)
 *   with the connection on an inherited fd and exactly NRI_PLUGIN_SOCKET, NRI_PLUGIN_NAME and
 *   NRI_PLUGIN_IDX in its environment (measured with containerd 2.1.9: nothing else, no PATH).
 * - external: started by an operator, systemd or a DaemonSet; connects to the runtime's socket.
 */
import { CONFIG_PATH } from '../domain/config.js';
import { NetqosError } from '../domain/errors.js';
import { invalidFlag, parseCommandArgs, stringFlag, usageError, type CommandSpec } from '../cli/args.js';
import { checkIdentity } from './stub.js';
import { DEFAULT_API_SOCKET, DEFAULT_STATE_DIR } from './api-protocol.js';

export const DEFAULT_NRI_SOCKET = '/var/run/nri/nri.sock';
export const DEFAULT_LOCK_PATH = '/run/netqos/nri.lock';
export const PLUGIN_NAME = 'netqos';
export const DEFAULT_INDEX = '10';

export const DAEMON_SPEC: CommandSpec = {
  name: 'netqos-nri',
  usage: 'netqos-nri [--socket PATH] [--index NN] [--config PATH] [--lock PATH] [--api PATH] [--state-dir DIR]',
  flags: {
    socket: { type: 'string' },
    index: { type: 'string' },
    config: { type: 'string' },
    lock: { type: 'string' },
    api: { type: 'string' },
    'state-dir': { type: 'string' },
  },
  maxPositionals: 0,
};

export type Connection = { mode: 'external'; socketPath: string } | { mode: 'pre-installed'; fd: number };

export interface DaemonArgs {
  connection: Connection;
  name: string;
  idx: string;
  configPath: string;
  lockPath: string;
  /** the local API's unix socket */
  apiPath: string;
  /** where overrides.json is kept */
  stateDir: string;
  help: boolean;
}

export function parseDaemonArgs(argv: readonly string[], env: NodeJS.ProcessEnv): DaemonArgs {
  const a = parseCommandArgs(DAEMON_SPEC, argv);
  const configPath = stringFlag(a, 'config') ?? env.NETQOS_CONFIG ?? CONFIG_PATH;
  const lockPath = stringFlag(a, 'lock') ?? DEFAULT_LOCK_PATH;
  const apiPath = stringFlag(a, 'api') ?? DEFAULT_API_SOCKET;
  const stateDir = stringFlag(a, 'state-dir') ?? DEFAULT_STATE_DIR;
  const examples = { config: CONFIG_PATH, lock: DEFAULT_LOCK_PATH, api: DEFAULT_API_SOCKET, 'state-dir': DEFAULT_STATE_DIR };
  for (const [flag, path] of [['config', configPath], ['lock', lockPath], ['api', apiPath], ['state-dir', stateDir]] as const) {
    if (!path.startsWith('/')) throw invalidFlag(flag, path, 'not an absolute path', `use a path such as ${examples[flag]}`);
  }
  const paths = { configPath, lockPath, apiPath, stateDir };
  const help = a.values.help === true;
  const inherited = env.NRI_PLUGIN_SOCKET;
  if (inherited !== undefined && inherited !== '') {
    if (stringFlag(a, 'socket') !== undefined || stringFlag(a, 'index') !== undefined) {
      throw usageError(DAEMON_SPEC, 'NRI_PLUGIN_SOCKET is set (launched by the runtime): --socket and --index do not apply');
    }
    const fd = Number(inherited);
    if (!/^[0-9]+$/.test(inherited) || fd < 3) {
      throw new NetqosError(
        'INVALID_ARGUMENT',
        `invalid NRI_PLUGIN_SOCKET ${JSON.stringify(inherited)}: not an inherited file descriptor; the runtime sets 3, and an external daemon is started without it`,
      );
    }
    const name = env.NRI_PLUGIN_NAME || PLUGIN_NAME;
    const idx = env.NRI_PLUGIN_IDX || DEFAULT_INDEX;
    checkIdentity(name, idx);
    return { connection: { mode: 'pre-installed', fd }, name, idx, ...paths, help };
  }
  const socketPath = stringFlag(a, 'socket') ?? DEFAULT_NRI_SOCKET;
  if (!socketPath.startsWith('/')) throw invalidFlag('socket', socketPath, 'not an absolute path', `use a path such as ${DEFAULT_NRI_SOCKET}`);
  const idx = stringFlag(a, 'index') ?? DEFAULT_INDEX;
  if (!/^[0-9]{2}$/.test(idx)) throw invalidFlag('index', idx, 'not two digits', 'use a value such as 10 (plugins are called in ascending order)');
  return { connection: { mode: 'external', socketPath }, name: PLUGIN_NAME, idx, ...paths, help };
}
