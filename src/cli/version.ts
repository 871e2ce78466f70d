/** The version and the oldest Node.js netqos supports, both from package.json (bundled in). */
import pkg from '../../package.json' with { type: 'json' };

export const VERSION: string = pkg.version;

/** ">=18" -> [18, 0], ">=20.5" -> [20, 5]; [0, 0] when the range says nothing usable */
export function minNode(range: string): readonly [number, number] {
  const m = />=\s*v?(\d+)(?:\.(\d+))?/.exec(range);
  return m ? [Number(m[1]), Number(m[2] ?? 0)] : [0, 0];
}

export const MIN_NODE = minNode(pkg.engines.node);
