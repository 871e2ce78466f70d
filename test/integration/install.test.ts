/**
 * install.sh into a scratch root (NETQOS_ROOT): installs every file it lists, twice gives the
 * same result, the hooks.d entry runs the installed hook with an absolute node, the NRI plugin
 * in either mode (pre-installed executable or systemd unit, never both), an operator's changed
 * config survives --uninstall, and --uninstall removes everything else.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect } from 'vitest';
import { run } from '../../src/kernel/runner.js';
import { requireRoot } from '../support/fixtures.js';

const root = requireRoot(['ip', 'tc']);
const dir = mkdtempSync(join(tmpdir(), 'nqt-install-'));
const install = (...args: string[]) =>
  run('/bin/bash', ['-c', `NETQOS_ROOT=${dir} bash install.sh ${args.join(' ')}`], { timeoutMs: 120_000, allowFail: true });
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
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  root.it('installs the CLI, the hook, the hooks.d entry and a default config, idempotently', async () => {
    const first = await install('--no-demo');
    expect(first.code, first.stderr).toBe(0);
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
