/**
 * The built CLI (dist/netqos.cjs) with vethShaping "host" (NETQOS_CONFIG names a config of ours),
 * against a namespace of ours playing the node (--host-netns): apply names the node-side trees,
 * gc --dry-run lists an orphan once the container's namespace is gone, gc removes it (and
 * nothing else), remove --id alone cleans by identity, and the host flags are refused without
 * the config.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import { hostIfbName } from '../../src/plan/host-names.js';
import { run, type RunResult } from '../../src/kernel/runner.js';
import { toolPath } from '../../src/kernel/tools.js';
import { cleanupAll, ipBatch, ipIn, makeNetns, nsPath, requireRoot, snapshotNs } from '../support/fixtures.js';

const root = requireRoot(['ip', 'tc', 'nsenter']);
const dir = mkdtempSync(join(tmpdir(), 'nqt-cli-host-'));
const hostConfig = join(dir, 'host.json');
writeFileSync(hostConfig, '{"vethShaping": "host"}\n');

async function cli(config: string | undefined, ...args: string[]): Promise<RunResult> {
  const env = { ...process.env, NETQOS_CONFIG: config ?? join(dir, 'absent.json') };
  return run(process.execPath, ['dist/netqos.cjs', ...args], { allowFail: true, timeoutMs: 30_000, env });
}
const ifbs = async (ns: string): Promise<string[]> =>
  (JSON.parse((await ipIn(ns, ['-json', '-details', 'link', 'show'])).stdout) as { ifname: string; linkinfo?: { info_kind?: string } }[])
    .filter((l) => l.linkinfo?.info_kind === 'ifb')
    .map((l) => l.ifname)
    .sort();

root.describe('netqos CLI with vethShaping "host"', () => {
  let node: string;
  let c: string;
  let before: string;

  beforeAll(async () => {
    node = await makeNetns('clih-node');
    c = await makeNetns('clih-c');
    await ipBatch(node, [`link add h1 index 4202 type veth peer name eth0 netns ${c} index 4203`, 'link set h1 up']);
    await ipBatch(c, ['link set eth0 up']);
    before = await snapshotNs(node);
  });
  afterAll(async () => {
    rmSync(dir, { recursive: true, force: true });
    await cleanupAll();
  });

  root.it('apply shapes on the node and says so; gc leaves a live container alone', async () => {
    const res = await cli(hostConfig, 'apply', '--netns', nsPath(c), '--id', 'cli-c1', '--host-netns', nsPath(node), '--egress', '10M', '--ingress', '20M');
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    const ifb = hostIfbName('cli-c1', 'eth0');
    expect(res.stdout).toContain(`${ifb} (node)`);
    expect(res.stdout).toContain('h1 (node)');
    expect(await ifbs(node)).toEqual([ifb]);
    const dry = await cli(hostConfig, 'gc', '--dry-run', '--host-netns', nsPath(node));
    expect(dry.stdout).toBe('no orphaned netqos objects on the node\n');
  });

  root.it('the container namespace goes: gc --dry-run lists the orphan, gc removes it, the node is as before', async () => {
    const ifb = hostIfbName('cli-c1', 'eth0');
    await run(toolPath('ip'), ['netns', 'del', c]);
    await ipBatch(node, ['link add nqt-notours type ifb']);
    const dry = await cli(hostConfig, 'gc', '--dry-run', '--json', '--host-netns', nsPath(node));
    expect(JSON.parse(dry.stdout)).toMatchObject({ orphans: [{ ifb, identity: 'cli-c1', containerIf: 'eth0', reason: 'its veth h1 (ifindex 4202) is gone' }], removed: 0 });
    expect(await ifbs(node)).toEqual([ifb, 'nqt-notours'].sort());
    const res = await cli(hostConfig, 'gc', '--grace-ms', '100', '--host-netns', nsPath(node));
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(new RegExp(`^IFB +CONTAINER +INTERFACE +WHY\\n${ifb} +cli-c1 +eth0 +its veth h1 \\(ifindex 4202\\) is gone\\nremoved 1 ifb\\n$`));
    expect(await ifbs(node)).toEqual(['nqt-notours']);
    await ipBatch(node, ['link del nqt-notours']);
    const withoutH1 = before.split('\n').filter((l) => !/^(link|qdisc|class|filter) h1 /.test(l)).join('\n');
    expect(await snapshotNs(node)).toBe(withoutH1);
  });

  root.it('remove --id alone removes the node objects of a container whose namespace is gone', async () => {
    const d = await makeNetns('clih-d');
    await ipBatch(node, [`link add h2 index 4204 type veth peer name eth0 netns ${d} index 4205`, 'link set h2 up']);
    await ipBatch(d, ['link set eth0 up']);
    expect((await cli(hostConfig, 'apply', '--netns', nsPath(d), '--id', 'cli-d1', '--host-netns', nsPath(node), '--egress', '10M')).code).toBe(0);
    await run(toolPath('ip'), ['netns', 'del', d]);
    const res = await cli(hostConfig, 'remove', '--id', 'cli-d1', '--host-netns', nsPath(node));
    expect(res.stdout).toBe('cli-d1: removed 1 object on the node\n');
    expect(await ifbs(node)).toEqual([]);
  });

  root.it('host flags without the config, and a target without --id, are usage errors (exit 2, one line)', async () => {
    const a = await cli(undefined, 'apply', '--netns', nsPath(node), '--id', 'x', '--egress', '10M');
    expect(a.code).toBe(2);
    expect(a.stderr).toMatch(/^netqos: --id applies only with vethShaping "host" in the config \(it is "container"\); usage: netqos apply/);
    const b = await cli(hostConfig, 'apply', '--netns', nsPath(node), '--egress', '10M');
    expect(b.code).toBe(2);
    expect(b.stderr).toMatch(/^netqos: vethShaping is "host": give the container's identity with --id/);
    const g = await cli(hostConfig, 'gc', '--grace-ms', 'soon');
    expect(g.stderr).toBe('netqos: invalid --grace-ms "soon": not a whole number of milliseconds from 0 to 60000; use a value such as "1000"\n');
  });
});
