/**
 * A first apply's discovery (discoverForSetup): from ip's recorded links alone when they show a
 * namespace netqos never shaped, so tc is asked nothing before the plan is written to it; the
 * whole read (qdiscs, then filters) otherwise. neverShaped is the pure test it uses.
 */
import { describe, expect, it } from 'vitest';
import type { Session } from '../../src/kernel/runner.js';
import type { NetnsTools } from '../../src/kernel/tools-session.js';
import { discoverForSetup } from '../../src/kernel/discover.js';
import { neverShaped } from '../../src/plan/apply-plan.js';
import { fixture, handmade, linksOf } from '../support/kernel-fixtures.js';

/** tools answering ip's links from a recording, tc from recordings by question; tc's questions are kept */
function fakeTools(links: string, tcAnswers: Record<string, string> = {}): { tools: NetnsTools; tcAsked: string[] } {
  const tcAsked: string[] = [];
  const unused = (): never => {
    throw new Error('not used by discovery');
  };
  const session = (answer: (c: string) => string, asked?: string[]): Session => ({
    pid: undefined,
    ask: async (commands) => {
      asked?.push(...commands);
      return commands.map(answer);
    },
    send: unused,
    finish: unused,
    close: () => undefined,
    end: unused,
  });
  return {
    tools: { ip: session(() => links), tc: session((c) => tcAnswers[c] ?? '[]', tcAsked), links: async () => links },
    tcAsked,
  };
}

describe('neverShaped: what ip alone shows', () => {
  it.each([
    ['a fresh veth container', 'ip-link-veth.json', true],
    ['a fresh macvlan container', 'ip-link-macvlan.json', true],
    ['only lo (root qdisc noop)', 'ip-link-lo-only.json', true],
    ['shaped: our ifb nqi2 and HTB roots', 'ip-link-veth-shaped.json', false],
    ['egress only: an HTB root, no ifb', 'ip-link-veth-egress-only.json', false],
    ["someone else's ifb with an HTB root (nqtx0): an HTB root is never taken as unshaped", 'ip-link-two-veth-foreign.json', false],
  ])('%s', (_what, file, fresh) => {
    expect(neverShaped(linksOf(file))).toBe(fresh);
  });

  it('our ifb whose root is gone (half-applied) is not unshaped', () => {
    const links = linksOf('ip-link-veth-shaped.json').map((l) => ({ ...l, rootQdisc: 'noqueue' }));
    expect(neverShaped(links)).toBe(false);
  });

  it('an ip that prints no root qdisc kind tells nothing: not unshaped', () => {
    const links = linksOf('ip-link-veth.json').map(({ rootQdisc: _, ...l }) => l);
    expect(neverShaped(links)).toBe(false);
  });
});

describe('discoverForSetup', () => {
  it('a namespace never shaped: tc is asked nothing, no qdiscs or filters, and the result says fresh', async () => {
    const { tools, tcAsked } = fakeTools(fixture('ip-link-veth.json'));
    const o = await discoverForSetup(tools);
    expect(tcAsked).toEqual([]);
    expect(o.fresh).toBe(true);
    expect(o.links.map((l) => l.name)).toEqual(['lo', 'nqtc0']);
    expect(o.qdiscs).toEqual([]);
    expect(o.filters).toEqual([]);
  });

  it('a shaped namespace: the qdiscs, then the hook and our roots\' filters, as discover() reads them', async () => {
    const { tools, tcAsked } = fakeTools(fixture('ip-link-veth-shaped.json'), { 'qdisc show': fixture('tc-qdisc-veth-shaped.json') });
    const o = await discoverForSetup(tools);
    expect(o.fresh).toBeUndefined();
    expect(tcAsked).toEqual(['qdisc show', 'filter show dev nqtc0 ingress', 'filter show dev nqtc0 parent 4e51:', 'filter show dev nqi2 parent 4e51:']);
    expect(o.qdiscs.some((q) => q.dev === 'nqtc0' && q.kind === 'ingress')).toBe(true);
  });

  it('an SR-IOV VF (root qdisc mq) beside the pod veth is fresh too', async () => {
    const { tools, tcAsked } = fakeTools(handmade('ip-link-sriov-vf.handmade.json'));
    expect((await discoverForSetup(tools)).fresh).toBe(true);
    expect(tcAsked).toEqual([]);
  });
});
