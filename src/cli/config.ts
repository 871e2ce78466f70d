/** The operator's config for CLI commands: the same file, and the same fallback, as the hook. */
import { readConfigFile } from '../config-file.js';
import { CONFIG_PATH, DEFAULT_CONFIG, type Config } from '../domain/config.js';
import { oneLine } from '../domain/errors.js';
import type { Io } from './command.js';

export const configPath = (): string => process.env.NETQOS_CONFIG || CONFIG_PATH;

/** A broken config is reported and the defaults are used, exactly as the OCI hook does. */
export function loadConfig(io: Io): Readonly<Config> {
  try {
    return readConfigFile(configPath());
  } catch (e) {
    io.err(`netqos: warning: ${oneLine(e)} (using defaults)\n`);
    return DEFAULT_CONFIG;
  }
}
