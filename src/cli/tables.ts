/** Tables as Markdown (for reports and docs) and CSV (for other tools), from one row-of-cells model. */

export type Cell = string | number | null;

export interface Table {
  columns: string[];
  rows: Cell[][];
}

/** Numbers to 4 significant digits in Markdown (readable); CSV keeps full precision. */
export function formatNumber(x: number, digits = 4): string {
  if (!Number.isFinite(x)) return String(x);
  if (x === 0) return '0';
  const ax = Math.abs(x);
  if (ax >= 1e-3 && ax < 1e6) return Number(x.toPrecision(digits)).toString();
  return x.toExponential(digits - 1);
}

function markdownCell(c: Cell): string {
  if (c === null) return '';
  if (typeof c === 'number') return formatNumber(c);
  return c.replace(/\|/g, '\\|');
}

export function toMarkdown(table: Table): string {
  const head = `| ${table.columns.join(' | ')} |`;
  const rule = `|${table.columns.map(() => '---').join('|')}|`;
  const body = table.rows.map((r) => `| ${r.map(markdownCell).join(' | ')} |`);
  return [head, rule, ...body].join('\n') + '\n';
}

function csvCell(c: Cell): string {
  if (c === null) return '';
  if (typeof c === 'number') return String(c);
  return /[",\n]/.test(c) ? `"${c.replace(/"/g, '""')}"` : c;
}

export function toCsv(table: Table): string {
  return [table.columns, ...table.rows].map((r) => r.map(csvCell).join(',')).join('\n') + '\n';
}

/** `mean ± sd` as one Markdown cell. */
export function meanSd(mean: number, sd: number): string {
  return `${formatNumber(mean)} ± ${formatNumber(sd)}`;
}
