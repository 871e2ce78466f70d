/** The shape every `netqos <command>` module exports, and where its output goes. */
import type { CommandSpec, ParsedArgs } from './args.js';

export interface Io {
  /** stdout: the command's result */
  out(text: string): void;
  /** stderr: progress and warnings (errors go through main, once) */
  err(text: string): void;
}

export interface Command {
  spec: CommandSpec;
  /** one line for `netqos --help` */
  summary: string;
  /** the text of `netqos <command> --help` after the usage line */
  help: string;
  /** resolves with the exit code; throws NetqosError for failures */
  run(args: ParsedArgs, io: Io): Promise<number>;
}
