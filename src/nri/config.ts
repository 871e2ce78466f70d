/**
 * The plugin's configuration: /etc/netqos/config.json, overridden field by field by the
 * config string the runtime sends in Configure (its drop-in, e.g.
 * /etc/nri/conf.d/10-netqos.conf: the same JSON schema). Pure.
 *
 * As in the OCI hook, a broken config is reported and never makes netqos act differently from
 * what the valid part says: a bad drop-in leaves the file's config, a bad file the defaults.
 */
import { DEFAULT_CONFIG, parseConfig, type Config } from '../domain/config.js';
import { oneLine } from '../domain/errors.js';

export const DROP_IN_LABEL = 'the NRI plugin config (the drop-in the runtime sent in Configure)';

export interface EffectiveConfig {
  config: Config;
  /** one line per part that was rejected, for the log */
  problems: string[];
}

/**
 * fileText: the file's contents, undefined when it does not exist; dropIn: Configure's config
 * ("" when the runtime has none).
 */
export function effectiveConfig(fileText: string | undefined, filePath: string, dropIn: string): EffectiveConfig {
  const problems: string[] = [];
  const file = fileText === undefined ? {} : validObject(fileText, filePath, problems);
  const over = dropIn.trim() === '' ? {} : validObject(dropIn, DROP_IN_LABEL, problems);
  const merged: Record<string, unknown> = { ...file, ...over };
  if (isObject(file.log) && isObject(over.log)) merged.log = { ...file.log, ...over.log };
  // both parts are valid on their own, and merging two valid objects gives a valid one
  const config = Object.keys(merged).length === 0 ? { ...DEFAULT_CONFIG, log: { ...DEFAULT_CONFIG.log } } : parseConfig(JSON.stringify(merged), filePath);
  return { config, problems };
}

/** the parsed JSON object when `text` is a valid config, else {} and a problem */
function validObject(text: string, label: string, problems: string[]): Record<string, unknown> {
  try {
    parseConfig(text, label);
    return JSON.parse(text.replace(/^\uFEFF/, '')) as Record<string, unknown>;
  } catch (e) {
    problems.push(`${oneLine(e)} (ignored)`);
    return {};
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
