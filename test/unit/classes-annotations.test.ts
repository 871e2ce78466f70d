/** netqos.io/<dir>-classes and netqos.io/unshaped-subnets: accepted values and every rejection's one line. */
import { describe, expect, it } from 'vitest';
import { parseAnnotations } from '../../src/domain/annotations.js';
import { readCidr } from '../../src/domain/cidr.js';
import { NetqosError } from '../../src/domain/errors.js';

const EG = 'kubernetes.io/egress-bandwidth';
const IN = 'kubernetes.io/ingress-bandwidth';
const EC = 'netqos.io/egress-classes';
const IC = 'netqos.io/ingress-classes';
const UN = 'netqos.io/unshaped-subnets';
const EXAMPLE = 'use a JSON array such as [{"name":"db","rate":"40M","ceil":"50M","priority":0,"match":{"cidr":["10.1.0.0/16"],"protocol":"tcp","port":5432}}]';
const SUBNETS = 'use prefixes separated by commas such as "10.0.0.0/8" or "192.168.0.0/16,fd00::/8"';

function rejection(a: Record<string, string>): string {
  try {
    parseAnnotations(a);
  } catch (e) {
    expect(e).toBeInstanceOf(NetqosError);
    expect((e as NetqosError).code).toBe('INVALID_ANNOTATION');
    expect((e as NetqosError).message).not.toContain('\n');
    return (e as NetqosError).message;
  }
  throw new Error(`accepted ${JSON.stringify(a)}`);
}

const one = (c: object): string => JSON.stringify([c]);
const db = { name: 'db', rate: '40M', match: { cidr: '10.1.0.0/16' } };

describe('readCidr', () => {
  it.each([
    ['10.1.0.0/16', '10.1.0.0/16', 4],
    ['10.1.2.3', '10.1.2.3/32', 4],
    ['0.0.0.0/0', '0.0.0.0/0', 4],
    ['FD00:0001:0000::/64', 'fd00:1::/64', 6],
    ['fd00::1', 'fd00::1/128', 6],
    ['2001:db8:0:0:1:0:0:1/128', '2001:db8::1:0:0:1/128', 6],
    ['::/0', '::/0', 6],
    ['::ffff:10.0.0.0/104', '::ffff:a00:0/104', 6],
  ])('%s -> %s', (text, canonical, family) => {
    const r = readCidr(text);
    expect(r).toMatchObject({ ok: true, value: { text: canonical, family } });
  });

  it.each([
    ['10.1.2.3/16', '"10.1.2.3/16" has host bits set; the network is "10.1.0.0/16"'],
    ['fd00::1/64', '"fd00::1/64" has host bits set; the network is "fd00::/64"'],
    ['10.1.0.0/33', '"10.1.0.0/33" has a prefix length above 32'],
    ['fd00::/129', '"fd00::/129" has a prefix length above 128'],
    ['10.1.0.0/016', '"10.1.0.0/016" has a malformed prefix length'],
    ['10.1.0/16', '"10.1.0/16" is not an IPv4 or IPv6 prefix'],
    ['010.1.0.0/16', '"010.1.0.0/16" is not an IPv4 or IPv6 prefix'],
    ['fd00:::1', '"fd00:::1" is not an IPv4 or IPv6 prefix'],
    ['1:2:3:4:5:6:7:8:9', '"1:2:3:4:5:6:7:8:9" is not an IPv4 or IPv6 prefix'],
    ['fe80::1%eth0', '"fe80::1%eth0" is not an IPv4 or IPv6 prefix'],
    ['', '"" is not an IPv4 or IPv6 prefix'],
  ])('%j is refused: %s', (text, reason) => {
    expect(readCidr(text)).toEqual({ ok: false, reason });
  });
});

describe('classes: accepted', () => {
  it('the full example, both families, IPv6 normalised, defaults left undefined', () => {
    const spec = parseAnnotations({
      [EG]: '50M',
      [EC]: JSON.stringify([
        { name: 'db', rate: '40M', ceil: '50M', priority: 0, match: { cidr: ['10.1.0.0/16', 'FD00:1:0::/64'], protocol: 'tcp', port: 5432 } },
        { name: 'web-2', rate: '10M', match: { cidr: '0.0.0.0/0' } },
      ]),
      [UN]: '10.0.0.0/8, fd00:9::/48',
    });
    expect(spec).toEqual({
      egress: {
        rateBps: 50e6,
        classes: [
          { name: 'db', rateBps: 40e6, ceilBps: 50e6, priority: 0, match: { cidrs: ['10.1.0.0/16', 'fd00:1::/64'], protocol: 'tcp', port: 5432 } },
          { name: 'web-2', rateBps: 10e6, match: { cidrs: ['0.0.0.0/0'] } },
        ],
      },
      unshapedSubnets: ['10.0.0.0/8', 'fd00:9::/48'],
    });
  });

  it('ingress classes beside egress ones; icmp for IPv4, icmpv6 for IPv6', () => {
    const spec = parseAnnotations({
      [EG]: '10M',
      [IN]: '20M',
      [IC]: one({ name: 'ping', rate: '1M', match: { cidr: '10.0.0.0/8', protocol: 'icmp' } }),
      [EC]: one({ name: 'ping6', rate: '1M', match: { cidr: 'fd00::/8', protocol: 'icmpv6' } }),
    });
    expect(spec?.ingress?.classes?.[0]?.match).toEqual({ cidrs: ['10.0.0.0/8'], protocol: 'icmp' });
    expect(spec?.egress?.classes?.[0]?.match).toEqual({ cidrs: ['fd00::/8'], protocol: 'icmpv6' });
  });

  it('rates may add up to the total exactly', () => {
    const spec = parseAnnotations({ [EG]: '50M', [EC]: JSON.stringify([{ ...db, rate: '40M' }, { name: 'b', rate: '10M', match: { cidr: '10.2.0.0/16' } }]) });
    expect(spec?.egress?.classes).toHaveLength(2);
  });
});

describe('classes: every rejection names the key, the value, the class and a valid example', () => {
  const pre = (value: string): string => `invalid annotation ${EC}=${JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value)}: `;
  const cases: Array<[string, string, string]> = [
    ['not JSON', '[{', 'not JSON ('],
    ['an object', '{"name":"db"}', 'not a JSON array of classes'],
    ['empty', '[]', 'an empty list; leave the annotation out for no classes'],
    ['17 classes', JSON.stringify(Array.from({ length: 17 }, (_, i) => ({ ...db, name: `c${i}` }))), '17 classes, more than the 16 allowed'],
    ['unknown field', one({ ...db, burst: '1M' }), 'class 1 ("db"): unknown field "burst"; the fields are name, rate, ceil, priority, match{cidr, protocol, port}'],
    ['unknown match field', one({ ...db, match: { cidr: '10.1.0.0/16', dport: 1 } }), 'class 1 ("db"): match has unknown field "dport"'],
    ['no rate', one({ name: 'db', match: db.match }), 'class 1 ("db"): rate is missing'],
    ['rate a number', one({ ...db, rate: 40 }), 'class 1 ("db"): rate must be a quantity string such as "40M"'],
    ['no match', one({ name: 'db', rate: '1M' }), 'class 1 ("db"): match is missing'],
    ['no cidr', one({ ...db, match: {} }), 'class 1 ("db"): match.cidr is missing'],
    ['cidr a number', one({ ...db, match: { cidr: 10 } }), 'class 1 ("db"): match.cidr must be a prefix string or an array of them'],
    ['empty cidr list', one({ ...db, match: { cidr: [] } }), 'class 1 ("db"): match.cidr names no prefix'],
    ['host bits', one({ ...db, match: { cidr: '10.1.2.3/16' } }), 'class 1 ("db"): match.cidr: "10.1.2.3/16" has host bits set; the network is "10.1.0.0/16"'],
    ['cidr twice', one({ ...db, match: { cidr: ['10.1.0.0/16', '10.1.0.0/16'] } }), 'class 1 ("db"): match.cidr: "10.1.0.0/16" is listed twice'],
    ['bad protocol', one({ ...db, match: { cidr: '10.1.0.0/16', protocol: 'http' } }), 'class 1 ("db"): match.protocol must be one of "tcp", "udp", "sctp", "icmp", "icmpv6"'],
    ['port without protocol', one({ ...db, match: { cidr: '10.1.0.0/16', port: 80 } }), 'class 1 ("db"): match.port needs match.protocol "tcp", "udp" or "sctp"'],
    ['port with icmp', one({ ...db, match: { cidr: '10.1.0.0/16', protocol: 'icmp', port: 80 } }), 'class 1 ("db"): match.port needs match.protocol "tcp", "udp" or "sctp"'],
    ['port 0', one({ ...db, match: { cidr: '10.1.0.0/16', protocol: 'tcp', port: 0 } }), 'class 1 ("db"): match.port 0 is outside 1 to 65535'],
    ['port 1.5', one({ ...db, match: { cidr: '10.1.0.0/16', protocol: 'tcp', port: 1.5 } }), 'class 1 ("db"): match.port must be a whole number'],
    ['icmp on IPv6', one({ ...db, match: { cidr: 'fd00::/8', protocol: 'icmp' } }), 'class 1 ("db"): match.protocol "icmp" is IPv4 only; use "icmpv6" for IPv6 prefixes'],
    ['icmpv6 on IPv4', one({ ...db, match: { cidr: '10.0.0.0/8', protocol: 'icmpv6' } }), 'class 1 ("db"): match.protocol "icmpv6" is IPv6 only; use "icmp" for IPv4 prefixes'],
    ['bad name', one({ ...db, name: 'DB' }), 'class 1 ("DB"): name must be 1 to 16 lowercase letters, digits or "-" (not first or last), such as "db"'],
    ['long name', one({ ...db, name: 'a'.repeat(17) }), `class 1 ("${'a'.repeat(17)}"): name must be 1 to 16`],
    ['reserved name', one({ ...db, name: 'default' }), 'class 1 ("default"): the name "default" is reserved for unmatched traffic'],
    ['name twice', JSON.stringify([db, db]), 'class 2 ("db"): the name is used twice'],
    ['bad rate', one({ ...db, rate: '40Mbit' }), 'class 1 ("db"): rate "40Mbit" is not a Kubernetes quantity'],
    ['rate above total', one({ ...db, rate: '60M' }), 'class 1 ("db"): rate 60M is above the total 50M of kubernetes.io/egress-bandwidth'],
    ['ceil below rate', one({ ...db, ceil: '30M' }), 'class 1 ("db"): ceil 30M is below its rate 40M'],
    ['ceil above total', one({ ...db, ceil: '60M' }), 'class 1 ("db"): ceil 60M is above the total 50M of kubernetes.io/egress-bandwidth'],
    ['priority 8', one({ ...db, priority: 8 }), 'class 1 ("db"): priority 8 is outside 0 (first) to 7'],
    ['priority text', one({ ...db, priority: 'high' }), 'class 1 ("db"): priority must be a number'],
    ['sum above total', JSON.stringify([db, { ...db, name: 'b', rate: '20M' }]), 'the class rates add up to 60M, more than the total 50M of kubernetes.io/egress-bandwidth'],
  ];
  it.each(cases)('%s', (_, value, why) => {
    const m = rejection({ [EG]: '50M', [EC]: value });
    expect(m.startsWith(pre(value))).toBe(true);
    expect(m).toContain(why);
    expect(m.endsWith(EXAMPLE)).toBe(true);
  });

  it('classes without the direction\'s bandwidth annotation', () => {
    expect(rejection({ [IN]: '50M', [EC]: one(db) })).toBe(
      `invalid annotation ${EC}=${JSON.stringify(one(db))}: classes share a total: add ${EG} on the same container, e.g. ${EG}="50M"`,
    );
  });
});

describe('unshaped subnets', () => {
  it.each([
    ['', 'no prefix named'],
    ['10.0.0.0/8,', 'empty entry in the list'],
    ['10.0.0.1/8', '"10.0.0.1/8" has host bits set; the network is "10.0.0.0/8"'],
    ['10.0.0.0/8,10.0.0.0/8', '"10.0.0.0/8" is listed twice'],
    ['example.com', '"example.com" is not an IPv4 or IPv6 prefix'],
  ])('%j: %s', (value, why) => {
    expect(rejection({ [EG]: '10M', [UN]: value })).toBe(`invalid annotation ${UN}=${JSON.stringify(value)}: ${why}; ${SUBNETS}`);
  });

  it('alone, without any bandwidth annotation, is refused like any netqos.io key', () => {
    expect(rejection({ [UN]: '10.0.0.0/8' })).toMatch(/^invalid annotation netqos\.io\/unshaped-subnets="10\.0\.0\.0\/8": netqos\.io annotations need a bandwidth annotation/);
  });
});
