/**
 * The runner's two shapes with real processes: run() and a session kept open (the form the
 * engine uses for `ip -batch -` / `tc -batch -`), including how a session ends badly.
 */
import { describe, expect, it } from 'vitest';
import { isNetqosError } from '../../src/domain/errors.js';
import { run, startSession } from '../../src/kernel/runner.js';

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
