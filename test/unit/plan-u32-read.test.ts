/** readU32Match: the rules netqos writes (u32Match) read back from the kernel's keys, for status. */
import { describe, expect, it } from 'vitest';
import { cidrOf } from '../../src/domain/cidr.js';
import { matchText, readU32Match, u32Match, type Side } from '../../src/plan/u32.js';

describe('readU32Match', () => {
  const cases: [string, Side, { protocol?: 'tcp' | 'udp' | 'sctp' | 'icmp' | 'icmpv6'; port?: number }, string][] = [
    ['10.1.0.0/16', 'dst', {}, '10.1.0.0/16'],
    ['198.18.200.11/32', 'src', { protocol: 'udp' }, '198.18.200.11/32 udp'],
    ['10.0.0.0/8', 'dst', { protocol: 'tcp', port: 5432 }, '10.0.0.0/8 tcp port 5432'],
    ['10.0.0.0/8', 'src', { protocol: 'sctp', port: 9 }, '10.0.0.0/8 sctp port 9'],
    ['0.0.0.0/0', 'dst', { protocol: 'icmp' }, '0.0.0.0/0 icmp'],
    ['fd00:1::/64', 'dst', { protocol: 'tcp', port: 443 }, 'fd00:1::/64 tcp port 443'],
    ['fd00:6e71:c2:80::/57', 'src', {}, 'fd00:6e71:c2:80::/57'],
    ['2001:db8::1/128', 'src', { protocol: 'icmpv6' }, '2001:db8::1/128 icmpv6'],
    ['fd00::/8', 'dst', { protocol: 'udp', port: 53 }, 'fd00::/8 udp port 53'],
  ];
  it.each(cases)('%s %s %j -> %s', (cidr, side, m, text) => {
    const c = cidrOf(cidr);
    const back = readU32Match(u32Match(c, side, m).keys, c.family === 4 ? 'ip' : 'ipv6', side);
    expect(back && matchText(back)).toBe(text);
  });

  it('keys of another shape, a foreign offset or the wrong family are not guessed', () => {
    expect(readU32Match(['00000045/000000ff@0'], 'ip', 'dst')).toBeUndefined();
    expect(readU32Match(['0a000000/ff000000@12'], 'ip', 'dst')).toBeUndefined(); // a source key on a dst rule
    expect(readU32Match(['0a000000/ff000000@16'], 'all', 'dst')).toBeUndefined();
    expect(readU32Match(['junk'], 'ip', 'dst')).toBeUndefined();
    // IPv6 prefix words out of order (second word without the first)
    expect(readU32Match(['00010000/ffff0000@28'], 'ipv6', 'dst')).toBeUndefined();
  });
});
