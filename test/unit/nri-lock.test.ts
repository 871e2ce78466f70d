/**
 * The node lock: one netqos NRI plugin per node. A second instance is refused with one line
 * naming the first; a lock file left by a killed holder is taken over; releasing removes it.
 * Real unix sockets in a private temporary directory; the "other" holder is a child process.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NetqosError } from '../../src/domain/errors.js';
import { acquireLock } from '../../src/nri/lock.js';

const dir = mkdtempSync(join(tmpdir(), 'nqt-lock-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const fresh = (): string => join(dir, `sub${n++}`, 'nri.lock');

describe('acquireLock', () => {
  it('is taken once; a second taker is refused with who holds it', async () => {
    const path = fresh();
    const lock = await acquireLock(path, { pid: process.pid, mode: 'external' });
    const err = await acquireLock(path, { pid: process.pid + 1, mode: 'pre-installed' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetqosError);
    expect((err as NetqosError).code).toBe('ALREADY_RUNNING');
    expect((err as Error).message).toBe(
      `another netqos NRI plugin already shapes this node (pid ${process.pid}, external, holding ${path}); only one may run: stop it first, or use either the pre-installed plugin or the daemon, not both`,
    );
    await lock.release();
    expect(existsSync(path)).toBe(false);
    const again = await acquireLock(path, { pid: process.pid, mode: 'external' });
    await again.release();
  });

  it('takes over the socket file a killed holder left behind', async () => {
    const path = fresh();
    // a child binds the socket and is SIGKILLed: the file stays, nobody listens
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    mkdirSync(join(path, '..'), { recursive: true });
    await new Promise<void>((r) => child.stdout!.once('data', () => r()));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(existsSync(path)).toBe(true);
    const lock = await acquireLock(path, { pid: process.pid, mode: 'external' });
    await lock.release();
  });

  it('refuses a listener that is not ours but alive, rather than steal it', async () => {
    const path = fresh();
    mkdirSync(join(path, '..'), { recursive: true });
    const foreign = createServer((c) => c.end('not json'));
    await new Promise<void>((r) => foreign.listen(path, r));
    const err = await acquireLock(path, { pid: process.pid, mode: 'external' }).catch((e: unknown) => e);
    expect((err as NetqosError).code).toBe('ALREADY_RUNNING');
    expect((err as Error).message).toMatch(/already shapes this node \(another process, holding/);
    await new Promise((r) => foreign.close(r));
  });

  it('replaces a plain file at the lock path', async () => {
    const path = fresh();
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, 'stale');
    const lock = await acquireLock(path, { pid: process.pid, mode: 'external' });
    await lock.release();
  });

  it('notices when its lock file is replaced', async () => {
    const path = fresh();
    const lock = await acquireLock(path, { pid: process.pid, mode: 'external' });
    const lost = new Promise<unknown>((r) => lock.watch(r, 20));
    rmSync(path);
    const usurper = createServer((c) => c.end(JSON.stringify({ pid: 1, mode: 'pre-installed' })));
    await new Promise<void>((r) => usurper.listen(path, r));
    expect(await lost).toEqual({ pid: 1, mode: 'pre-installed' });
    await lock.release();
    expect(existsSync(path)).toBe(true); // not ours any more: left alone
    await new Promise((r) => usurper.close(r));
  });
});
