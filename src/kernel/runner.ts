/**
 * The only module that starts processes. Argument arrays, never a shell; every child has a
 * deadline and is killed (SIGKILL, so it cannot linger holding a runtime's stdio) when it
 * passes it.
 *
 * Built on node:child_process rather than execa: measured here (esbuild bundle, Node 20),
 * importing execa costs 7.5 ms and its first call 11 ms against 3 ms for a bare spawn, about
 * 17 ms for the three processes of a container setup, more than the hook's whole 15 ms budget.
 *
 * Two shapes: run() (input in, wait for the exit) and startSession() (a `ip -batch -` or
 * `tc -batch -` kept open: questions answered line by line, then the last commands). iproute2
 * flushes its output after every batch command, so one process can read a namespace and then
 * change it. Measured: spawning blocks Node for 2 ms (5 ms for the first child), so a container
 * setup with two sessions instead of four processes saves a third of the hook's work.
 *
 * A session's work is done when a question asked after its last command is answered (finish):
 * iproute2's batch stops at the first failing command, so the answer says every one before it
 * succeeded. The process's exit is reaped after that, off the caller's path: measured here, an
 * ip or tc exit and Node's handling of it take 0.7 ms after the last answer.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { NetqosError } from '../domain/errors.js';

export interface RunOptions {
  /** written to the child's stdin (a `tc -batch -` script, for example) */
  input?: string;
  /** deadline in ms; default 5000 */
  timeoutMs?: number;
  /** resolve with the exit code instead of throwing when it is not 0 */
  allowFail?: boolean;
  /**
   * the child's environment (LC_ALL=C is always added); default none. podman needs the
   * caller's (CONTAINERS_CONF, XDG_RUNTIME_DIR, ...): pass process.env for it.
   */
  env?: NodeJS.ProcessEnv;
  /** called with the child's pid once it started, so a caller can kill it on a signal */
  onSpawn?: (pid: number) => void;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export const DEFAULT_TIMEOUT_MS = 5000;

export function run(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  // no input: stdin is /dev/null (writing to a child that never reads costs an EPIPE error)
  const child = launch(file, args, opts, opts.input === undefined ? 'ignore' : 'pipe');
  if (opts.input !== undefined) child.stdin?.end(opts.input);
  return child.done;
}

/** A batch process kept open: `ask` writes commands that print one line each, `end` finishes. */
export interface Session {
  /** the process's pid (undefined when it could not start) */
  readonly pid: number | undefined;
  /** writes the commands and resolves with the next lines of output, one per command */
  ask(commands: readonly string[]): Promise<string[]>;
  /** writes commands that print nothing (a failure ends the process: the next ask or end says so) */
  send(input: string): void;
  /**
   * Writes the last commands and then `check`, a question printing one line, closes stdin and
   * resolves once `check` is answered: every command before it succeeded. Resolves with what
   * the process wrote on stderr by then (the kernel's warnings). The exit is reaped later, under
   * the same deadline; a failure rejects with the process's own first line, as end() does.
   */
  finish(input: string, check: string): Promise<string>;
  /** closes stdin without waiting: for a session whose every command was confirmed by an answer */
  close(): void;
  /** writes the last commands (maybe none), closes stdin and waits for the exit, as run() does */
  end(input?: string): Promise<RunResult>;
}

export function startSession(file: string, args: readonly string[], opts: Omit<RunOptions, 'input'> = {}): Session {
  const child = launch(file, args, opts, 'pipe');
  let exited: NetqosError | undefined;
  const waiting: { n: number; lines: string[]; resolve: (l: string[]) => void; reject: (e: Error) => void }[] = [];
  let partial = '';
  child.stdout?.on('data', (b: Buffer) => {
    const parts = (partial + b.toString('utf8')).split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) {
      const w = waiting[0];
      if (!w) continue; // output nobody asked for (none from iproute2's change commands)
      w.lines.push(line);
      if (w.lines.length === w.n) {
        waiting.shift();
        w.resolve(w.lines);
      }
    }
  });
  child.done.then(
    (r) => failWaiting(new NetqosError('KERNEL', `${child.shown} exited (code ${r.code}) before answering${why(r)}`)),
    (e: NetqosError) => failWaiting(e),
  );
  function failWaiting(e: NetqosError): void {
    exited = e;
    for (const w of waiting.splice(0)) w.reject(e);
  }
  // the exit is reported by end(); a caller that only asks must not see an unhandled rejection
  child.done.catch(() => undefined);
  let open = true;
  const closeStdin = (input = ''): void => {
    if (open) child.stdin?.end(input);
    open = false;
  };
  const ask = (commands: readonly string[]): Promise<string[]> => {
    if (exited) return Promise.reject(exited);
    if (commands.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      waiting.push({ n: commands.length, lines: [], resolve, reject });
      child.stdin?.write(commands.map((c) => `${c}\n`).join(''));
    });
  };
  return {
    pid: child.pid,
    ask,
    send(input) {
      if (!exited) child.stdin?.write(input);
    },
    async finish(input, check) {
      if (exited) throw exited;
      if (input) child.stdin?.write(input);
      const answered = ask([check]);
      closeStdin();
      await answered;
      // stderr was written before the answer on stdout, but the two pipes are read in whichever
      // order epoll lists them: one turn of the event loop (both were ready at the same poll)
      // and every warning printed before the answer has been read
      await new Promise((r) => setImmediate(r));
      return child.stderrSoFar();
    },
    close: () => closeStdin(),
    end(input = '') {
      closeStdin(input);
      return child.done;
    },
  };
}

/**
 * A session whose process starts on first use (ask, send, finish): a teardown starts tc only
 * once ip is deleting the ifbs, so Node's spawn does not delay that. end() and close() of a
 * session never used start nothing.
 */
export function lazySession(start: () => Session): Session {
  let s: Session | undefined;
  const get = (): Session => (s ??= start());
  return {
    get pid() {
      return s?.pid;
    },
    ask: (commands) => get().ask(commands),
    send: (input) => get().send(input),
    finish: (input, check) => get().finish(input, check),
    close: () => s?.close(),
    end: (input = '') => (s || input ? get().end(input) : Promise.resolve({ code: 0, stdout: '', stderr: '' })),
  };
}

interface Launched {
  pid: number | undefined;
  stdin: ChildProcess['stdin'];
  stdout: ChildProcess['stdout'];
  shown: string;
  done: Promise<RunResult>;
  /** what the child wrote on stderr so far */
  stderrSoFar(): string;
}

function launch(file: string, args: readonly string[], opts: RunOptions, stdin: 'pipe' | 'ignore'): Launched {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const shown = [file, ...args].join(' ');
  const child = spawn(file, args, { stdio: [stdin, 'pipe', 'pipe'], env: { ...opts.env, LC_ALL: 'C' } });
  if (child.pid !== undefined) opts.onSpawn?.(child.pid);
  const err: Buffer[] = [];
  const done = new Promise<RunResult>((resolve, reject) => {
    const out: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => err.push(b));
    child.stdin?.on('error', () => {
      // the child exited before reading its input: its exit status tells the story
    });
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const code = e.code === 'ENOENT' ? 'MISSING_TOOL' : 'KERNEL';
      reject(new NetqosError(code, `cannot run ${file}: ${e.message}`, { cause: e }));
    });
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      const result = {
        code: status ?? 128,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      };
      if (timedOut) {
        reject(new NetqosError('TIMEOUT', `${shown} did not finish within ${timeoutMs} ms and was killed`));
      } else if (result.code !== 0 && !opts.allowFail) {
        reject(new NetqosError('KERNEL', `${shown} failed (exit ${result.code})${why(result, signal)}`, { cause: result }));
      } else {
        resolve(result);
      }
    });
  });
  return { pid: child.pid, stdin: child.stdin, stdout: child.stdout, shown, done, stderrSoFar: () => Buffer.concat(err).toString('utf8') };
}

function why(r: RunResult, signal?: NodeJS.Signals | null): string {
  const line = firstLine(r.stderr) || firstLine(r.stdout) || (signal ? `signal ${signal}` : '');
  return line ? `: ${line}` : '';
}

/** the first line that says something went wrong: iproute2 may print the kernel's warnings before its error */
function firstLine(s: string): string {
  const lines = s.trim().split('\n');
  return lines.find((l) => !/^Warning\b/i.test(l.trim())) ?? lines[0] ?? '';
}
