import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readConfigFile } from '../../src/config-file.js';
import { CONFIG_PATH, DEFAULT_CONFIG, parseConfig, type Config } from '../../src/domain/config.js';
import { NetqosError } from '../../src/domain/errors.js';

const PATH = '/etc/netqos/config.json';
const PREFIX = `invalid config ${PATH}: `;

function rejection(run: () => unknown): NetqosError {
  try {
    run();
  } catch (e) {
    expect(e).toBeInstanceOf(NetqosError);
    expect((e as NetqosError).code).toBe('INVALID_CONFIG');
    expect((e as NetqosError).message).not.toContain('\n');
    return e as NetqosError;
  }
  throw new Error('accepted');
}

describe('parseConfig: valid files', () => {
  it('gives every default for an empty object', () => {
    expect(parseConfig('{}', PATH)).toEqual({
      onError: 'fail',
      log: { file: '/var/log/netqos/netqos.log', level: 'info' },
      queueLatencyUs: 5000,
      hookTimeoutMs: 8000,
      vfEgress: 'software',
      sriovStateDir: '/run/netqos/sriov',
      vethShaping: 'container',
    });
    expect(parseConfig('{}', PATH)).toEqual(DEFAULT_CONFIG);
  });

  const cases: Array<[string, Partial<Config>]> = [
    ['{"onError": "warn"}', { onError: 'warn' }],
    ['{"onError": "fail"}', { onError: 'fail' }],
    ['{"log": {}}', {}],
    ['{"log": {"level": "debug"}}', { log: { file: DEFAULT_CONFIG.log.file, level: 'debug' } }],
    ['{"log": {"level": "silent"}}', { log: { file: DEFAULT_CONFIG.log.file, level: 'silent' } }],
    ['{"log": {"file": "/tmp/n.log"}}', { log: { file: '/tmp/n.log', level: 'info' } }],
    ['{"log": {"file": "/x", "level": "error"}}', { log: { file: '/x', level: 'error' } }],
    ['{"queueLatency": "100us"}', { queueLatencyUs: 100 }],
    ['{"queueLatency": "2.5ms"}', { queueLatencyUs: 2500 }],
    ['{"queueLatency": "1s"}', { queueLatencyUs: 1_000_000 }],
    ['{"hookTimeoutMs": 1000}', { hookTimeoutMs: 1000 }],
    ['{"vfEgress": "hardware"}', { vfEgress: 'hardware' }],
    ['{"vfEgress": "both"}', { vfEgress: 'both' }],
    ['{"sriovStateDir": "/var/lib/netqos/sriov"}', { sriovStateDir: '/var/lib/netqos/sriov' }],
    ['{"hookTimeoutMs": 25000}', { hookTimeoutMs: 25000 }],
    ['{"hookTimeoutMs": 5e3}', { hookTimeoutMs: 5000 }],
    ['{"vethShaping": "host"}', { vethShaping: 'host' }],
    ['{"vethShaping": "container"}', { vethShaping: 'container' }],
    ['\uFEFF{"onError": "warn"}', { onError: 'warn' }], // a BOM from an editor
    ['  {\n  "onError": "warn"\n}\n', { onError: 'warn' }],
  ];
  it.each(cases)('%j', (text, changes) => {
    expect(parseConfig(text, PATH)).toEqual({ ...DEFAULT_CONFIG, ...changes });
  });

  it('returns a fresh config that callers may change without touching the defaults', () => {
    const c = parseConfig('{}', PATH);
    c.log.level = 'debug';
    expect(DEFAULT_CONFIG.log.level).toBe('info');
    expect(Object.isFrozen(DEFAULT_CONFIG)).toBe(true);
    expect(Object.isFrozen(DEFAULT_CONFIG.log)).toBe(true);
  });
});

describe('parseConfig: one-line rejections', () => {
  const ON_ERROR = 'use "fail" (bad annotations fail the container) or "warn" (start it unshaped)';
  const LOG = 'use an object such as {"file": "/var/log/netqos/netqos.log", "level": "info"}';
  const FILE = 'use an absolute path such as "/var/log/netqos/netqos.log"';
  const LEVEL = 'use "debug", "info", "warn", "error" or "silent"';
  const LATENCY = 'use a duration from 100us to 1s such as "5ms"';
  const TIMEOUT = 'use a whole number of milliseconds from 1000 to 25000';
  const TOP = 'the file must hold a JSON object such as {"onError": "warn"}; {} gives all defaults';

  const cases: Array<[string, string]> = [
    ['{"onError": "ignore"}', `onError="ignore": not one of the choices; ${ON_ERROR}`],
    ['{"onError": "WARN"}', `onError="WARN": not one of the choices; ${ON_ERROR}`],
    ['{"onError": true}', `onError=true: not one of the choices; ${ON_ERROR}`],
    ['{"log": null}', `log=null: not an object; ${LOG}`],
    ['{"log": "/var/log/x"}', `log="/var/log/x": not an object; ${LOG}`],
    ['{"log": {"file": "netqos.log"}}', `log.file="netqos.log": not an absolute path; ${FILE}`],
    ['{"log": {"file": ""}}', `log.file="": not an absolute path; ${FILE}`],
    ['{"log": {"file": 7}}', `log.file=7: not a string; ${FILE}`],
    ['{"log": {"level": "trace"}}', `log.level="trace": not one of the choices; ${LEVEL}`],
    ['{"log": {"colour": "red"}}', `log.colour="red": unknown field; the fields of log are file, level`],
    ['{"queueLatency": "5"}', `queueLatency="5": a duration needs a unit; ${LATENCY}`],
    ['{"queueLatency": 5}', `queueLatency=5: not a string; ${LATENCY}`],
    ['{"queueLatency": "5 ms"}', `queueLatency="5 ms": not a duration; ${LATENCY}`],
    ['{"queueLatency": "99us"}', `queueLatency="99us": below the minimum of 100us; ${LATENCY}`],
    ['{"queueLatency": "2s"}', `queueLatency="2s": above the maximum of 1s; ${LATENCY}`],
    ['{"queueLatency": "-5ms"}', `queueLatency="-5ms": negative; ${LATENCY}`],
    ['{"hookTimeoutMs": 999}', `hookTimeoutMs=999: below the minimum of 1000; ${TIMEOUT}`],
    ['{"hookTimeoutMs": 25001}', `hookTimeoutMs=25001: above the maximum of 25000; ${TIMEOUT}`],
    ['{"hookTimeoutMs": 1500.5}', `hookTimeoutMs=1500.5: not a whole number; ${TIMEOUT}`],
    ['{"hookTimeoutMs": "8000"}', `hookTimeoutMs="8000": not a whole number; ${TIMEOUT}`],
    ['{"hookTimeoutMs": null}', `hookTimeoutMs=null: not a whole number; ${TIMEOUT}`],
    ['{"vfEgress": "hw"}', 'vfEgress="hw": not one of the choices; use "software" (HTB on the VF), "hardware" (the PF caps the VF: ip link set PF vf N max_tx_rate) or "both"'],
    ['{"sriovStateDir": "run/netqos"}', 'sriovStateDir="run/netqos": not an absolute path; use an absolute path such as "/run/netqos/sriov"'],
    ['{"sriovStateDir": 7}', 'sriovStateDir=7: not a string; use an absolute path such as "/run/netqos/sriov"'],
    [
      '{"vethShaping": "node"}',
      'vethShaping="node": not one of the choices; use "container" (shape inside the container) or "host" (shape a veth on its peer in the node\'s namespace)',
    ],
    [
      '{"onerror": "warn"}',
      'onerror="warn": unknown field; the fields are onError, log, queueLatency, hookTimeoutMs, vfEgress, sriovStateDir, vethShaping',
    ],
    ['[]', `the top level is not a JSON object; ${TOP}`],
    ['null', `the top level is not a JSON object; ${TOP}`],
    ['"{}"', `the top level is not a JSON object; ${TOP}`],
    ['', `not valid JSON (Unexpected end of JSON input); ${TOP}`],
  ];
  it.each(cases)('%j', (text, message) => {
    expect(rejection(() => parseConfig(text, PATH)).message).toBe(PREFIX + message);
  });

  it("reports a JSON syntax error with V8's reason (its wording varies by Node version)", () => {
    const e = rejection(() => parseConfig('{"onError": "warn",}', PATH));
    expect(e.message).toMatch(/^invalid config \/etc\/netqos\/config\.json: not valid JSON \(.*position 19.*\); /);
    expect(e.message.endsWith(`; ${TOP}`)).toBe(true);
  });

  it('reports a JSON syntax error spread over lines on one line', () => {
    const e = rejection(() => parseConfig('{\n  "onError":\n}\n', PATH));
    expect(e.message.startsWith(`${PREFIX}not valid JSON (`)).toBe(true);
    expect(e.cause).toBeInstanceOf(SyntaxError);
  });

  it('cuts a huge bad value short', () => {
    const e = rejection(() => parseConfig(JSON.stringify({ log: { file: 'x'.repeat(500) } }), PATH));
    expect(e.message).toBe(`${PREFIX}log.file="${'x'.repeat(76)}...: not an absolute path; ${FILE}`);
  });
});

describe('readConfigFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'netqos-config-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads /etc/netqos/config.json by default', () => {
    expect(CONFIG_PATH).toBe('/etc/netqos/config.json');
  });

  it('gives the defaults when the file does not exist', () => {
    expect(readConfigFile(join(dir, 'absent.json'))).toBe(DEFAULT_CONFIG);
  });

  it('parses the file when it exists', () => {
    const path = join(dir, 'config.json');
    writeFileSync(path, '{"onError": "warn", "hookTimeoutMs": 3000}');
    expect(readConfigFile(path)).toEqual({ ...DEFAULT_CONFIG, onError: 'warn', hookTimeoutMs: 3000 });
  });

  it('names the file in a validation error', () => {
    const path = join(dir, 'bad.json');
    writeFileSync(path, '{"onError": "maybe"}');
    expect(rejection(() => readConfigFile(path)).message).toMatch(
      new RegExp(`^invalid config ${path}: onError="maybe": not one of the choices; `),
    );
  });

  it('rejects a path it cannot read, keeping the cause', () => {
    const path = join(dir, 'a-directory.json');
    mkdirSync(path);
    const e = rejection(() => readConfigFile(path));
    expect(e.message).toBe(
      `invalid config ${path}: cannot read it (EISDIR); make it a readable JSON file or remove it to use the defaults`,
    );
    expect((e.cause as NodeJS.ErrnoException).code).toBe('EISDIR');
  });
});

describe('readConfigFile: the hook memo of the last validated config', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nqt-memo-'));
  const cfg = join(dir, 'config.json');
  const memo = join(dir, 'memo.json');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('validates once, then answers from the memo while path and text stay the same', () => {
    writeFileSync(cfg, '{"onError":"warn"}');
    expect(readConfigFile(cfg, memo).onError).toBe('warn');
    const m = JSON.parse(readFileSync(memo, 'utf8')) as { text: string; config: { queueLatencyUs: number } };
    expect(m.text).toBe('{"onError":"warn"}');
    // a value only the memo holds proves the second read came from it
    m.config.queueLatencyUs = 1234;
    writeFileSync(memo, JSON.stringify(m));
    expect(readConfigFile(cfg, memo).queueLatencyUs).toBe(1234);
  });

  it('a changed file is validated again (and a bad one is refused, memo or not)', () => {
    writeFileSync(cfg, '{"onError":"fail"}');
    expect(readConfigFile(cfg, memo)).toMatchObject({ onError: 'fail', queueLatencyUs: 5000 });
    writeFileSync(cfg, '{"onError":"maybe"}');
    expect(() => readConfigFile(cfg, memo)).toThrow(/onError="maybe"/);
  });

  it('a memo of another version, of another path, or unreadable is not trusted', () => {
    writeFileSync(cfg, '{}');
    readConfigFile(cfg, memo);
    const m = JSON.parse(readFileSync(memo, 'utf8')) as { v: string; path: string; config: { hookTimeoutMs: number } };
    m.config.hookTimeoutMs = 1111;
    writeFileSync(memo, JSON.stringify({ ...m, v: '0:onError' }));
    expect(readConfigFile(cfg, memo).hookTimeoutMs).toBe(8000);
    writeFileSync(memo, JSON.stringify({ ...m, path: '/elsewhere.json' }));
    expect(readConfigFile(cfg, memo).hookTimeoutMs).toBe(8000);
    writeFileSync(memo, 'not json');
    expect(readConfigFile(cfg, memo).hookTimeoutMs).toBe(8000);
  });
});
