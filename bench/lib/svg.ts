/**
 * SVG charts, written by hand (no dependency): small multiples, one panel per limit.
 * - rate over time: per-second L2 rate / limit for each system, the limit as a dashed line;
 *   values above the panel's top are drawn at the top with their value printed.
 * - RTT under load: the distribution (CDF) of ping RTTs per system on a log axis; lost probes
 *   keep the curve below 100 %.
 * Pure: data in, text out.
 */

export interface Line {
  label: string;
  color: string;
  values: number[];
}

export interface Panel {
  title: string;
  lines: Line[];
}

export const COLORS: Record<string, string> = {
  netqos: '#1f77b4',
  'cni-containerd': '#d62728',
  'cni-tuned': '#ff7f0e',
  unshaped: '#7f7f7f',
};

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const W = 300;
const H = 200;
const M = { l: 46, r: 10, t: 24, b: 30 };

function frame(panels: Panel[], title: string, draw: (p: Panel, x: number, y: number) => string[], legend: Line[]): string {
  const cols = Math.min(3, Math.max(1, panels.length));
  const rows = Math.ceil(panels.length / cols);
  const width = cols * W + 20;
  const height = rows * H + 60;
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="10">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="16" font-size="13" font-weight="bold">${esc(title)}</text>`,
  ];
  panels.forEach((p, i) => out.push(...draw(p, 10 + (i % cols) * W, 24 + Math.floor(i / cols) * H)));
  let lx = 10;
  for (const l of legend) {
    out.push(`<rect x="${lx}" y="${height - 22}" width="12" height="3" fill="${l.color}"/>`, `<text x="${lx + 16}" y="${height - 17}">${esc(l.label)}</text>`);
    lx += 20 + l.label.length * 5.6;
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/** Per-second rate relative to the limit (1 = the limit), clipped at `top`. */
export function rateChart(title: string, panels: Panel[], top = 1.5): string {
  const legend = uniqueLines(panels);
  return frame(
    panels,
    title,
    (p, ox, oy) => {
      const pw = W - M.l - M.r;
      const ph = H - M.t - M.b;
      const n = Math.max(2, ...p.lines.map((l) => l.values.length));
      const x = (i: number): number => ox + M.l + (i / (n - 1)) * pw;
      const y = (v: number): number => oy + M.t + ph - (Math.min(v, top) / top) * ph;
      const g = [`<text x="${ox + M.l}" y="${oy + 14}" font-weight="bold">${esc(p.title)}</text>`];
      g.push(`<rect x="${ox + M.l}" y="${oy + M.t}" width="${pw}" height="${ph}" fill="none" stroke="#ccc"/>`);
      for (const v of [0, 0.5, 1, top]) {
        g.push(`<text x="${ox + M.l - 4}" y="${y(v) + 3}" text-anchor="end">${Math.round(v * 100)} %</text>`);
      }
      g.push(`<line x1="${ox + M.l}" x2="${ox + M.l + pw}" y1="${y(1)}" y2="${y(1)}" stroke="#000" stroke-dasharray="4 3"/>`);
      g.push(`<text x="${ox + M.l + pw / 2}" y="${oy + H - 6}" text-anchor="middle">second of the run</text>`);
      for (const l of p.lines) {
        if (l.values.length === 0) continue;
        const pts = l.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
        g.push(`<polyline points="${pts}" fill="none" stroke="${l.color}" stroke-width="1.5"/>`);
        l.values.forEach((v, i) => {
          if (v > top) g.push(`<text x="${x(i) + 3}" y="${y(top) + 10}" fill="${l.color}">${Math.round(v * 100)} %</text>`);
        });
      }
      return g;
    },
    legend,
  );
}

/** CDF of RTT samples (ms, Infinity = lost) on a log axis from lo to hi ms. */
export function rttChart(title: string, panels: Panel[], lo = 0.01, hi = 10_000): string {
  const legend = uniqueLines(panels);
  const l0 = Math.log10(lo);
  const l1 = Math.log10(hi);
  return frame(
    panels,
    title,
    (p, ox, oy) => {
      const pw = W - M.l - M.r;
      const ph = H - M.t - M.b;
      const x = (ms: number): number => ox + M.l + ((Math.log10(Math.min(hi, Math.max(lo, ms))) - l0) / (l1 - l0)) * pw;
      const y = (f: number): number => oy + M.t + ph - f * ph;
      const g = [`<text x="${ox + M.l}" y="${oy + 14}" font-weight="bold">${esc(p.title)}</text>`];
      g.push(`<rect x="${ox + M.l}" y="${oy + M.t}" width="${pw}" height="${ph}" fill="none" stroke="#ccc"/>`);
      for (let e = Math.ceil(l0); e <= l1; e++) {
        const v = 10 ** e;
        g.push(`<line x1="${x(v)}" x2="${x(v)}" y1="${y(0)}" y2="${y(1)}" stroke="#eee"/>`);
        g.push(`<text x="${x(v)}" y="${y(0) + 11}" text-anchor="middle">${v >= 1000 ? `${v / 1000}s` : `${v}`}</text>`);
      }
      for (const f of [0, 0.5, 0.99, 1]) g.push(`<text x="${ox + M.l - 4}" y="${y(f) + 3}" text-anchor="end">${Math.round(f * 100)} %</text>`);
      g.push(`<line x1="${x(5)}" x2="${x(5)}" y1="${y(0)}" y2="${y(1)}" stroke="#000" stroke-dasharray="4 3"/>`);
      g.push(`<text x="${ox + M.l + pw / 2}" y="${oy + H - 6}" text-anchor="middle">RTT, ms (dashed: 5 ms)</text>`);
      for (const l of p.lines) {
        const s = [...l.values].sort((a, b) => a - b);
        if (s.length === 0) continue;
        const pts: string[] = [`${x(lo).toFixed(1)},${y(0).toFixed(1)}`];
        s.forEach((v, i) => {
          if (!Number.isFinite(v)) return;
          pts.push(`${x(v).toFixed(1)},${y(i / s.length).toFixed(1)}`, `${x(v).toFixed(1)},${y((i + 1) / s.length).toFixed(1)}`);
        });
        g.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="${l.color}" stroke-width="1.5"/>`);
      }
      return g;
    },
    legend,
  );
}

function uniqueLines(panels: Panel[]): Line[] {
  const seen = new Map<string, Line>();
  for (const p of panels) for (const l of p.lines) if (!seen.has(l.label)) seen.set(l.label, l);
  return [...seen.values()];
}
