/**
 * Reading /etc/netqos/config.json: the only I/O behind the config. A missing file is the normal
 * case (defaults); anything else that goes wrong is an INVALID_CONFIG the operator must fix.
 * Synchronous on purpose: the OCI hook reads one small file and has no other work to overlap.
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { CONFIG_FIELDS, CONFIG_PATH, DEFAULT_CONFIG, parseConfig, type Config } from './domain/config.js';
import { NetqosError } from './domain/errors.js';

/**
 * memoFile: where the OCI hook remembers the last config it validated (next to its bundle). A
 * file whose path and text are the same as the memo's is not validated again: building and
 * running the zod schema was the largest piece of the hook's own JavaScript (2.2 of 5.5 ms in its
 * cpu profile), for a file that changes once in a while. Anything unreadable, stale or from
 * another version of the fields just means validating again.
 */
export function readConfigFile(path: string = CONFIG_PATH, memoFile?: string): Readonly<Config> {
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
  if (memoFile === undefined) return parseConfig(text, path);
  const known = recall(memoFile, path, text);
  if (known !== undefined) return known;
  const config = parseConfig(text, path);
  remember(memoFile, { v: MEMO_VERSION, path, text, config });
  return config;
}

interface Memo {
  v: string;
  path: string;
  text: string;
  config: Config;
}

/** the fields of this version: a memo written by another version is not trusted */
const MEMO_VERSION = `1:${CONFIG_FIELDS.join(',')}`;

function recall(memoFile: string, path: string, text: string): Config | undefined {
  try {
    const m = JSON.parse(readFileSync(memoFile, 'utf8')) as Partial<Memo>;
    return m.v === MEMO_VERSION && m.path === path && m.text === text && typeof m.config === 'object' ? m.config : undefined;
  } catch {
    return undefined;
  }
}

function remember(memoFile: string, memo: Memo): void {
  const tmp = `${memoFile}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, JSON.stringify(memo), { mode: 0o600 });
    renameSync(tmp, memoFile); // whole or not at all, also with hooks running side by side
  } catch {
    rmSync(tmp, { force: true }); // a read-only install: validate every time
  }
}
