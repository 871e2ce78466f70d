/**
 * The runner's two shapes with real processes: run() and a session kept open (the form the
 * engine uses for `ip -batch -` / `tc -batch -`), including how a session ends badly.
 */
import { describe, expect, it } from 'vitest';
import { isNetqosError } from '../../src/domain/errors.js';
import { lazySession, run, startSession, type Session } from '../../src/kernel/runner.js';

describe('run', () => {
  it('feeds input, returns stdout, and gives a child without input /dev/null as stdin', async () => {
    expect((await run('/bin/cat', [], { input: 'a\nb\n' })).stdout).toBe('a\nb\n');
    expect((await run('/usr/bin/readlink', ['/proc/self/fd/0'])).stdout).toBe('/dev/null\n');
  });

  it('names the command and its first stderr line when it fails', async () => {
    const e = await run('/bin/ls', ['/nonexistent-nqt']).catch((x: unknown) => x);
    expect(isNetqosError(e) && e.code).toBe('KERNEL');
    expect(String((e as Error).message)).toMatch(/^\/bin\/ls \/nonexistent-nqt failed \(exit 2\): .*nonexistent-nqt/);
  });

  it('kills a child that passes its deadline', async () => {
    const t0 = performance.now();
    const e = await run('/bin/sleep', ['10'], { timeoutMs: 150 }).catch((x: unknown) => x);
    expect(isNetqosError(e) && e.code).toBe('TIMEOUT');
    expect(performance.now() - t0).toBeLessThan(2000);
  });
});

describe('startSession', () => {
  it('answers questions line by line from one process, then ends with the rest', async () => {
    const s = startSession('/bin/cat', []);
    expect(await s.ask(['one'])).toEqual(['one']);
    expect(await s.ask(['two', 'three'])).toEqual(['two', 'three']);
    s.send('four\n');
    const r = await s.end('five\n');
    expect(r.code).toBe(0);
    // everything the process printed is also in the result, asked for or not
    expect(r.stdout).toBe('one\ntwo\nthree\nfour\nfive\n');
  });

  it('an answer split across reads is reassembled', async () => {
    // 2000 lines (about 100 KB) cannot arrive in one read: chunks end in the middle of lines
    const s = startSession('/bin/cat', []);
    const many = Array.from({ length: 2000 }, (_, i) => `line ${i} ${'x'.repeat(40)}`);
    expect(await s.ask(many)).toEqual(many);
    await s.end();
  });

  it('a process that exits before answering rejects the question with its stderr', async () => {
    const s = startSession('/bin/sh', ['-c', 'read x; echo "bad command: $x" >&2; exit 3']);
    const e = await s.ask(['frobnicate']).catch((x: unknown) => x);
    expect(isNetqosError(e) && e.code).toBe('KERNEL');
    expect(String((e as Error).message)).toContain('failed (exit 3): bad command: frobnicate');
    await expect(s.ask(['again'])).rejects.toThrow(/failed \(exit 3\): bad command: frobnicate/);
    await expect(s.end()).rejects.toThrow(/failed \(exit 3\): bad command: frobnicate/);
  });

  it('a process that ends cleanly without answering rejects the question too', async () => {
    const s = startSession('/bin/true', []);
    await expect(s.ask(['anything'])).rejects.toThrow(/^\/bin\/true exited \(code 0\) before answering$/);
    expect((await s.end()).code).toBe(0);
  });

  it('a session that passes its deadline is killed and says so', async () => {
    const s = startSession('/bin/sleep', ['10'], { timeoutMs: 150 });
    const e = await s.ask(['anything']).catch((x: unknown) => x);
    expect(isNetqosError(e) && e.code).toBe('TIMEOUT');
    await expect(s.end()).rejects.toThrow(/did not finish within 150 ms/);
  });

  it('a missing program is a MISSING_TOOL error, for questions and for the end', async () => {
    const s = startSession('/nonexistent-nqt/tool', []);
    const e = await s.ask(['x']).catch((x: unknown) => x);
    expect(isNetqosError(e) && e.code).toBe('MISSING_TOOL');
    await expect(s.end()).rejects.toThrow(/cannot run \/nonexistent-nqt\/tool/);
  });
});

describe('finish: the last commands confirmed by one more question', () => {
  // like `tc -batch -`: a line per question, a warning on stderr while working
  const batch = `while read -r c; do case "$c" in warn*) echo "Warning: $c" >&2 ;; ask*) echo "answer $c" ;; fail*) echo "Error: $c" >&2; exit 1 ;; esac; done`;

  it('resolves once the question after the commands is answered, with the warnings printed before it', async () => {
    // 40 rounds: stderr and stdout are two pipes, read in the order epoll lists them
    for (let i = 0; i < 40; i++) {
      const s = startSession('/bin/sh', ['-c', batch]);
      expect(await s.finish('warn one\nwarn two\n', 'ask last')).toBe('Warning: warn one\nWarning: warn two\n');
      // the exit comes after, and is still reported to whoever waits for it
      expect((await s.end()).code).toBe(0);
    }
  });

  it('does not wait for the exit: a process that lingers after its answer is reaped later', async () => {
    // answers, then takes 1.5 s to exit (as ip and tc take 0.7 ms, tearing their mount namespace down)
    const s = startSession('/bin/sh', ['-c', 'read -r c; echo "answer $c"; exec sleep 1.5']);
    const t0 = performance.now();
    expect(await s.finish('', 'ask last')).toBe('');
    expect(performance.now() - t0).toBeLessThan(1000);
    expect((await s.end()).code).toBe(0);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(1400);
  });

  it('a failing command rejects with its line: the question after it is never answered', async () => {
    const s = startSession('/bin/sh', ['-c', batch]);
    await expect(s.finish('warn a\nfail here\nask b\n', 'ask last')).rejects.toThrow(/failed \(exit 1\): Error: fail here/);
  });

  it('the real tc: a batch that fails at a command is reported, one that does not is confirmed', async () => {
    const bad = startSession('/usr/sbin/tc', ['-json', '-batch', '-']);
    await expect(bad.finish('qdisc show dev nqt-no-such-dev\n', 'qdisc show dev lo')).rejects.toThrow(/Cannot find device "nqt-no-such-dev"/);
    const good = startSession('/usr/sbin/tc', ['-json', '-batch', '-']);
    expect(await good.finish('', 'qdisc show dev lo')).toBe('');
    expect((await good.end()).code).toBe(0);
  });

  it('close ends stdin without waiting; the exit is still reaped', async () => {
    const s = startSession('/bin/cat', []);
    expect(await s.ask(['x'])).toEqual(['x']);
    s.close();
    s.close(); // twice is harmless
    expect((await s.end()).stdout).toBe('x\n');
  });
});

describe('lazySession', () => {
  it('starts its process on first use only', async () => {
    let started = 0;
    const s: Session = lazySession(() => (started++, startSession('/bin/cat', [])));
    expect(s.pid).toBeUndefined();
    s.close();
    expect((await s.end()).code).toBe(0);
    expect(started).toBe(0);
    expect(await s.ask(['hello'])).toEqual(['hello']);
    expect(started).toBe(1);
    expect(s.pid).toBeGreaterThan(0);
    expect(await s.finish('', 'bye')).toBe('');
    expect((await s.end()).stdout).toBe('hello\nbye\n');
    expect(started).toBe(1);
  });
});
