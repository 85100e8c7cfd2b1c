/**
 * Plots as SVG without a browser: a Vega-Lite spec is compiled to Vega and rendered headless by a Vega View
 * with renderer 'none', whose toSVG() serialises the scene graph. Vega is loaded only when a plot is
 * rendered, so the computing commands run where only the package's small dependencies are installed.
 */
import type { TopLevelSpec } from 'vega-lite';

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';

export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const [vega, vegaLite] = await Promise.all([import('vega'), import('vega-lite')]);
  const view = new vega.View(vega.parse(vegaLite.compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export interface LinePoint {
  x: number;
  y: number;
  /** Lower and upper edge of a shaded band (e.g. mean ± sd); omit both for no band. */
  lo?: number;
  hi?: number;
  series: string;
}

export interface LinePanel {
  title: string;
  xTitle: string;
  yTitle: string;
  points: LinePoint[];
  logY?: boolean;
  width?: number;
  height?: number;
}

/** One panel: a line per series, with its band when the points carry one. */
function panelSpec(p: LinePanel): object {
  const hasBand = p.points.some((q) => q.lo !== undefined && q.hi !== undefined);
  // A log scale cannot show zero or negative band edges: clip the lower edge to a small positive value.
  const values = p.points.map((q) => (p.logY && q.lo !== undefined
    ? { ...q, lo: Math.max(q.lo, q.y * 1e-2) }
    : q));
  const yScale = p.logY ? { type: 'log' } : { zero: false };
  const x = { field: 'x', type: 'quantitative', title: p.xTitle };
  const color = { field: 'series', type: 'nominal', title: null, legend: { labelLimit: 500, orient: 'bottom', direction: 'vertical' } };
  const layer: object[] = [];
  if (hasBand) {
    layer.push({
      mark: { type: 'area', opacity: 0.15 },
      encoding: { x, y: { field: 'lo', type: 'quantitative', scale: yScale, title: p.yTitle }, y2: { field: 'hi' }, color },
    });
  }
  layer.push({
    mark: { type: 'line', point: p.points.length <= 150 },
    encoding: { x, y: { field: 'y', type: 'quantitative', scale: yScale, title: p.yTitle }, color },
  });
  return { title: p.title, width: p.width ?? 340, height: p.height ?? 240, data: { values }, layer };
}

/** Panels side by side under one title (each panel keeps its own y scale). */
export function linePlotSpec(title: string, panels: LinePanel[]): TopLevelSpec {
  if (panels.length === 1) {
    return { $schema: SCHEMA, ...panelSpec({ ...panels[0]!, title: `${title}: ${panels[0]!.title}` }) } as unknown as TopLevelSpec;
  }
  return {
    $schema: SCHEMA,
    title,
    hconcat: panels.map(panelSpec),
    resolve: { scale: { color: 'shared' } },
  } as unknown as TopLevelSpec;
}

export interface ScatterPoint {
  x: number;
  y: number;
  series: string;
}

/** Points per series joined by lines, on a log x axis when asked (the rate plot). */
export function seriesPlotSpec(title: string, xTitle: string, yTitle: string, points: ScatterPoint[],
  o: { logX?: boolean } = {}): TopLevelSpec {
  return {
    $schema: SCHEMA,
    title,
    width: 380,
    height: 260,
    data: { values: points },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: xTitle, scale: o.logX ? { type: 'log' } : {} },
      y: { field: 'y', type: 'quantitative', title: yTitle },
      color: { field: 'series', type: 'nominal', title: null, legend: { labelLimit: 500, orient: 'bottom', direction: 'vertical' } },
    },
  } as unknown as TopLevelSpec;
}
