/**
 * install.sh into a scratch root (NETQOS_ROOT): installs every file it lists, twice gives the
 * same result, the hooks.d entry runs the installed hook with an absolute node, the hook's code
 * cache is warmed by a real container start and stop (and install still succeeds, with a
 * warning, where that cannot run), the NRI plugin in either mode (pre-installed executable or
 * systemd unit, never both), an operator's changed config survives --uninstall, and --uninstall
 * removes everything else.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect } from 'vitest';
import { run } from '../../src/kernel/runner.js';
import { cleanupAll, makeNetns, nsPath, pidAlive, registerPid, requireRoot, tcIn, unregisterPid, vethPair } from '../support/fixtures.js';

const root = requireRoot(['ip', 'tc', 'nsenter']);
const dir = mkdtempSync(join(tmpdir(), 'nqt-install-'));
/** env: assignments for install.sh's environment (PATH=..., say) */
const installWith = (env: string, ...args: string[]) =>
  run('/bin/bash', ['-c', `${env} NETQOS_ROOT=${dir} bash install.sh ${args.join(' ')}`], { timeoutMs: 120_000, allowFail: true });
const install = (...args: string[]) => installWith('', ...args);
const LIB = join(dir, 'usr/local/lib/netqos');
const CACHE = join(LIB, 'netqos-hook-main.cjs.v8cache');
/** the cache size of the first installation, warmed by a container start and stop */
let warmedBytes = 0;
const files = [
  'usr/local/bin/netqos',
  'usr/local/lib/netqos/netqos.cjs',
  'usr/local/lib/netqos/netqos-hook.cjs',
  'usr/local/lib/netqos/netqos-hook-main.cjs',
  'usr/local/lib/netqos/netqos-hook-main.cjs.v8cache',
  'usr/local/lib/netqos/netqos-nri.cjs',
  'usr/share/containers/oci/hooks.d/50-netqos.json',
  'etc/netqos/config.json',
];

root.describe('install.sh', () => {
  afterAll(async () => {
    await cleanupAll();
    rmSync(dir, { recursive: true, force: true });
  });

  root.it('installs the CLI, the hook, the hooks.d entry and a default config, idempotently', async () => {
    const first = await install('--no-demo');
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).not.toMatch(/warning/);
    // the code cache was warmed by a real start and stop, in a namespace that is gone again
    const warmed = /warmed the hook's code cache \((\d+) bytes\) with a container start and stop in the throwaway namespace (netqos-warm-\d+)\n/.exec(first.stdout);
    expect(warmed, first.stdout).not.toBeNull();
    expect(existsSync(`/run/netns/${warmed![2]}`)).toBe(false);
    warmedBytes = statSync(CACHE).size;
    expect(warmedBytes).toBe(Number(warmed![1]));
    for (const f of files) expect(existsSync(join(dir, f)), f).toBe(true);
    const manifest = readFileSync(join(dir, 'usr/local/lib/netqos/MANIFEST'), 'utf8');
    const second = await install('--no-demo');
    expect(second.code, second.stderr).toBe(0);
    expect(readFileSync(join(dir, 'usr/local/lib/netqos/MANIFEST'), 'utf8')).toBe(manifest);
    const hook = JSON.parse(readFileSync(join(dir, files[6]!), 'utf8')) as { hook: { path: string; args: string[] }; stages: string[] };
    expect(hook.hook.path).toMatch(/^\/.*node$/);
    expect(hook.hook.args).toEqual(['node', '/usr/local/lib/netqos/netqos-hook.cjs']);
    expect(hook.stages).toEqual(['createRuntime', 'poststop']);
    // the installed bundle is the hook: fed a state it refuses a bad annotation with one line
    const state = JSON.stringify({ id: 'a'.repeat(64), pid: process.pid, status: 'created', bundle: dir, annotations: { 'kubernetes.io/egress-bandwidth': '1' } });
    const r = await run(process.execPath, [join(dir, files[2]!)], { input: state, allowFail: true });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/kubernetes\.io\/egress-bandwidth="1"/);
  }, 240_000);

  root.it('the installed code cache already holds what a container start and stop compile: rewriting it after both adds nothing', async () => {
    // a copy of the installed hook, so the installation itself stays as it was
    const copy = join(dir, 'hook-copy');
    mkdirSync(copy);
    for (const f of ['netqos-hook.cjs', 'netqos-hook-main.cjs', 'netqos-hook-main.cjs.v8cache']) copyFileSync(join(LIB, f), join(copy, f));
    const cache = join(copy, 'netqos-hook-main.cjs.v8cache');
    const installed = readFileSync(cache);
    const config = join(copy, 'config.json');
    writeFileSync(config, JSON.stringify({ log: { file: join(copy, 'hook.log') } }));
    // NETQOS_HOOK_CACHE=refresh: the loader writes the cache at exit even though it loaded one,
    // with every function it holds then: the loaded ones and those this run had to compile
    const hook = (state: object, refresh: boolean) =>
      run('/usr/bin/env', [`NETQOS_CONFIG=${config}`, ...(refresh ? ['NETQOS_HOOK_CACHE=refresh'] : []), process.execPath, join(copy, 'netqos-hook.cjs')], {
        input: JSON.stringify(state),
        allowFail: true,
        timeoutMs: 20_000,
      });
    // a container's first start validates the config (later ones find it in the memo beside the
    // hook); an ordinary run leaves the cache as it is
    const first = await hook({ id: 'nqt-install-first', status: 'created', pid: 1, bundle: '/nonexistent', annotations: {} }, false);
    expect(first.code, first.stderr).toBe(0);
    expect(readFileSync(cache).equals(installed)).toBe(true);

    const ns = await makeNetns('inst-w');
    await vethPair(ns, await makeNetns('inst-wp'));
    const sleeper = spawn('/usr/bin/nsenter', [`--net=${nsPath(ns)}`, '/bin/sleep', '120'], { stdio: 'ignore' });
    registerPid(sleeper.pid!, 'sleep');
    const want = `net:[${statSync(nsPath(ns)).ino}]`;
    for (let i = 0; i < 100 && !(pidAlive(sleeper.pid!, 'sleep') && readlinkSync(`/proc/${sleeper.pid}/ns/net`) === want); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const bundle = join(copy, 'bundle');
    mkdirSync(bundle);
    writeFileSync(join(bundle, 'config.json'), JSON.stringify({ linux: { namespaces: [{ type: 'network', path: nsPath(ns) }] } }));
    const annotations = { 'kubernetes.io/egress-bandwidth': '10M', 'kubernetes.io/ingress-bandwidth': '10M' };
    const shaped = async (): Promise<boolean> => (await tcIn(ns, ['qdisc', 'show', 'dev', 'eth0'])).stdout.includes('htb 4e51:');

    const create = await hook({ id: 'nqt-install-warm', status: 'created', pid: sleeper.pid, bundle, annotations }, true);
    expect(create.code, create.stderr).toBe(0);
    expect(create.stderr).toBe('');
    expect(await shaped()).toBe(true);
    const exited = new Promise((r) => sleeper.once('exit', r));
    sleeper.kill('SIGKILL');
    await exited;
    unregisterPid(sleeper.pid!);
    const stop = await hook({ id: 'nqt-install-warm', status: 'stopped', bundle, annotations }, true);
    expect(stop.code, stop.stderr).toBe(0);
    expect(stop.stderr).toBe('');
    expect(await shaped()).toBe(false);

    // measured: +-60 bytes of 145 KB; a cache warmed by a run that applies nothing grows by
    // 76 KB here, one that missed poststop by 15 KB
    const after = statSync(cache).size;
    expect(Math.abs(after - installed.length), `installed ${installed.length} bytes, ${after} after a container start and stop`).toBeLessThan(installed.length * 0.01);
  }, 60_000);

  root.it('where the warm-up cannot run, install still succeeds: a warning, the cache of a run that applied nothing, no namespace left', async () => {
    // an nsenter that cannot enter: the namespace is made, the sleep for its pid never starts
    const fake = join(dir, 'fakebin');
    mkdirSync(fake);
    writeFileSync(join(fake, 'nsenter'), '#!/bin/sh\necho "nsenter: reassociate to namespace: Operation not permitted" >&2\nexit 1\n', { mode: 0o755 });
    const r = await installWith(`PATH=${fake}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`, '--no-demo');
    expect(r.code, r.stderr).toBe(0);
    const warning = /^netqos install: warning: could not warm the hook's code cache with a container start and stop in a throwaway namespace \((netqos-warm-\d+)\): sleep did not start in \1; /.exec(r.stderr);
    expect(warning, r.stderr).not.toBeNull();
    expect(existsSync(`/run/netns/${warning![1]}`)).toBe(false);
    expect(r.stdout).toMatch(/installed: /);
    // the old warm-up's cache: much smaller than one written after a container start and stop
    expect(readFileSync(join(LIB, 'MANIFEST'), 'utf8').split('\n')).toContain(CACHE);
    expect(statSync(CACHE).size).toBeLessThan(warmedBytes * 0.7);
  }, 120_000);

  root.it('--nri installs the pre-installed NRI plugin, a wrapper that runs the installed daemon without PATH', async () => {
    const r = await install('--no-demo', '--nri');
    expect(r.code, r.stderr).toBe(0);
    const plugin = join(dir, 'opt/nri/plugins/10-netqos');
    expect(statSync(plugin).mode & 0o777).toBe(0o755);
    const text = readFileSync(plugin, 'utf8');
    expect(text).toMatch(/^#!\/bin\/sh\n/);
    expect(text).toMatch(/\nexec \/\S*node \/usr\/local\/lib\/netqos\/netqos-nri\.cjs "\$@"\n$/);
    expect(existsSync(join(dir, 'etc/systemd/system/netqos-nri.service'))).toBe(false);
    // run as containerd runs it: no PATH, the installed bundle (the scratch root's copy) answers
    const wrapper = text.replace('/usr/local/lib/netqos/netqos-nri.cjs', join(dir, 'usr/local/lib/netqos/netqos-nri.cjs'));
    const copy = join(dir, 'plugin-under-test');
    writeFileSync(copy, wrapper, { mode: 0o755 });
    const help = await run('/usr/bin/env', ['-i', copy, '--help'], { allowFail: true });
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/^usage: netqos-nri /);
    rmSync(copy);
  }, 240_000);

  root.it('--nri-daemon switches to the systemd unit and removes the pre-installed plugin; both at once is refused', async () => {
    const both = await install('--no-demo', '--nri', '--nri-daemon');
    expect(both.code).toBe(1);
    expect(both.stderr.trim()).toBe('netqos install: --nri, --nri-daemon and --no-nri exclude each other');
    const r = await install('--no-demo', '--nri-daemon');
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(join(dir, 'opt/nri/plugins/10-netqos'))).toBe(false);
    const unit = readFileSync(join(dir, 'etc/systemd/system/netqos-nri.service'), 'utf8');
    expect(unit).toMatch(/^ExecStart=\/\S*node \/usr\/local\/lib\/netqos\/netqos-nri\.cjs --socket \/var\/run\/nri\/nri\.sock$/m);
    expect(unit).toMatch(/^Restart=always$/m);
    expect(readFileSync(join(dir, 'usr/local/lib/netqos/MANIFEST'), 'utf8')).toContain('/etc/systemd/system/netqos-nri.service');
  }, 240_000);

  root.it('--uninstall removes what it installed and keeps a config the operator changed', async () => {
    writeFileSync(join(dir, 'etc/netqos/config.json'), '{"onError":"warn"}\n');
    const r = await install('--uninstall');
    expect(r.code, r.stderr).toBe(0);
    for (const f of files.slice(0, 7)) expect(existsSync(join(dir, f)), f).toBe(false);
    expect(existsSync(join(dir, 'etc/netqos/config.json'))).toBe(true);
    expect(r.stdout).toMatch(/kept .*config\.json: it was changed/);
    expect(existsSync(join(dir, 'etc/systemd/system/netqos-nri.service'))).toBe(false);
    expect(existsSync(join(dir, 'opt/nri'))).toBe(false);
  }, 60_000);
});
