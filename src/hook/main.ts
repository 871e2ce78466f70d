/**
 * Entry point of netqos-hook (bundled by esbuild into one file). Reads the OCI state from
 * stdin, runs the hook under an overall deadline, prints at most one line, sets the exit code.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { DEFAULT_CONFIG, type Config } from '../domain/config.js';
import { oneLine } from '../domain/errors.js';
import { readConfigFile } from '../config-file.js';
import { createLogger } from '../log.js';
import { openEarly, runHook } from './run-hook.js';
import { parseState, type HookState } from './state.js';

async function main(): Promise<number> {
  // the state first: at createRuntime the container's ip and tc start while the rest is read
  let state: HookState;
  try {
    state = parseState(readFileSync(0, 'utf8'));
  } catch (e) {
    process.stderr.write(`netqos: ${oneLine(e)}\n`);
    return 1;
  }
  const early = openEarly(state, process.argv[2]);
  let config: Config = { ...DEFAULT_CONFIG };
  try {
    config = readConfigFile(process.env.NETQOS_CONFIG, memoFile());
  } catch (e) {
    // a broken config must be seen, and is never a reason to act differently than the defaults
    process.stderr.write(`netqos: ${oneLine(e)} (using defaults)\n`);
  }
  const deadline = setTimeout(() => {
    process.stderr.write(`netqos: hook did not finish within ${config.hookTimeoutMs} ms (hookTimeoutMs in the config)\n`);
    process.exit(1);
  }, config.hookTimeoutMs);
  deadline.unref();
  const log = createLogger({ ...config.log, name: 'netqos-hook' });
  let code: number;
  try {
    const out = await runHook(state, config, log, process.argv[2], early);
    if (out.line) process.stderr.write(`${out.line}\n`);
    code = out.exitCode;
  } catch (e) {
    process.stderr.write(`netqos: ${oneLine(e)}\n`);
    code = 1;
  }
  return code;
}

/** beside the installed hook (argv[1], the loader), like its V8 code cache */
const memoFile = (): string | undefined => (process.argv[1] ? join(dirname(process.argv[1]), 'netqos-hook-config.memo.json') : undefined);

void main().then((code) => {
  process.exitCode = code;
});
