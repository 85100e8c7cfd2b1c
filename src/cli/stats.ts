/** Small summaries over repeated runs. */

export function mean(xs: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i]!;
  return xs.length > 0 ? s / xs.length : NaN;
}

/** Sample standard deviation (n − 1); 0 for a single value. */
export function sd(xs: ArrayLike<number>): number {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += (xs[i]! - m) ** 2;
  return Math.sqrt(s / (xs.length - 1));
}

export function median(xs: ArrayLike<number>): number {
  const a = Array.from(xs).sort((p, q) => p - q);
  if (a.length === 0) return NaN;
  const h = a.length >> 1;
  return a.length % 2 === 1 ? a[h]! : (a[h - 1]! + a[h]!) / 2;
}

/** Per-column mean and sd of equally long series (one series per run). */
export function seriesMeanSd(series: number[][]): { mean: number[]; sd: number[] } {
  const len = series[0]?.length ?? 0;
  const m: number[] = [];
  const s: number[] = [];
  for (let t = 0; t < len; t++) {
    const col = series.map((row) => row[t]!);
    m.push(mean(col));
    s.push(sd(col));
  }
  return { mean: m, sd: s };
}
