// Report helpers shared by the load benches: nearest-rank percentiles and millisecond formatting.

/** The q-th percentile (nearest rank) of `a`; NaN when empty. */
export function pct(a, q) {
  if (a.length === 0) return NaN;
  const s = [...a].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((q / 100) * s.length))];
}

/** One decimal, or n/a for NaN. */
export const f = (v) => (Number.isNaN(v) ? 'n/a' : v.toFixed(1));
