/**
 * Reading /etc/netqos/config.json: the only I/O behind the config. A missing file is the normal
 * case (defaults); anything else that goes wrong is an INVALID_CONFIG the operator must fix.
 * Synchronous on purpose: the OCI hook reads one small file and has no other work to overlap.
 */
import { readFileSync } from 'node:fs';
import { CONFIG_PATH, DEFAULT_CONFIG, parseConfig, type Config } from './domain/config.js';
import { NetqosError } from './domain/errors.js';

export function readConfigFile(path: string = CONFIG_PATH): Readonly<Config> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return DEFAULT_CONFIG;
    throw new NetqosError(
      'INVALID_CONFIG',
      `invalid config ${path}: cannot read it (${code ?? (e as Error).message}); make it a readable JSON file or remove it to use the defaults`,
      { cause: e },
    );
  }
  return parseConfig(text, path);
}
