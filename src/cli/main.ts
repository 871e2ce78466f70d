/**
 * Entry point of `netqos` (bundled by esbuild into dist/netqos.cjs): picks the command, converts
 * every error exactly once into one stderr line `netqos: <message>` and the exit code:
 * 0 done, 1 failed, 2 usage (unknown command or option, bad value).
 */
import { isNetqosError, oneLine } from '../domain/errors.js';
import { parseCommandArgs } from './args.js';
import type { Io } from './command.js';
import { COMMANDS, commandHelp, findCommand, MAIN_USAGE, mainHelp } from './usage.js';
import { VERSION } from './version.js';

// A reader that goes away (`netqos demo | head -1`) must not crash us half-way: the demo has
// namespaces to delete. Later output is lost; the work and its cleanup go on.
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);

const io: Io = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
};

async function main(argv: readonly string[], out: Io = io): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) return fail(out, `missing command; usage: ${MAIN_USAGE}`, 2);
  if (name === '--help' || name === '-h' || name === 'help') {
    const about = name === 'help' && rest[0] !== undefined ? findCommand(rest[0]) : undefined;
    out.out(about ? commandHelp(about) : mainHelp());
    return 0;
  }
  if (name === '--version') {
    out.out(`netqos ${VERSION}\n`);
    return 0;
  }
  const command = findCommand(name);
  if (!command) {
    const what = name.startsWith('-') ? `unknown option ${JSON.stringify(name)}` : `unknown command ${JSON.stringify(name)}`;
    return fail(out, `${what}; the commands are ${COMMANDS.map((c) => c.spec.name).join(', ')}; usage: ${MAIN_USAGE}`, 2);
  }
  try {
    const args = parseCommandArgs(command.spec, rest);
    if (args.values.help === true) {
      out.out(commandHelp(command));
      return 0;
    }
    return await command.run(args, out);
  } catch (e) {
    if (isNetqosError(e)) return fail(out, oneLine(e), e.code === 'INVALID_ARGUMENT' ? 2 : 1);
    return fail(out, `internal error: ${oneLine(e)}`, 1);
  }
}

function fail(out: Io, message: string, code: number): number {
  out.err(`netqos: ${message}\n`);
  return code;
}

void main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
