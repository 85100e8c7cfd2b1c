/** Writing an experiment's outputs: tables as Markdown and CSV, plots as SVG, all under one directory. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { ioError } from '../errors.js';
import { renderSvg } from '../plot.js';
import { toCsv, toMarkdown, type Table } from '../tables.js';

export class ArtifactWriter {
  readonly written: string[] = [];

  /** `plots: false` skips the SVGs (and never loads vega): tables only. */
  constructor(readonly dir: string, readonly plots = true) {
    try {
      mkdirSync(dir, { recursive: true });
    } catch (e) {
      throw ioError(dir, `cannot create the output directory (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
    }
  }

  private write(name: string, text: string): string {
    const path = join(this.dir, name);
    try {
      writeFileSync(path, text);
    } catch (e) {
      throw ioError(path, `cannot write (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
    }
    this.written.push(path);
    return path;
  }

  /** `<name>.md` and `<name>.csv`. */
  table(name: string, table: Table): void {
    this.write(`${name}.md`, toMarkdown(table));
    this.write(`${name}.csv`, toCsv(table));
  }

  text(name: string, text: string): void {
    this.write(name, text);
  }

  async plot(name: string, spec: TopLevelSpec): Promise<void> {
    if (!this.plots) return;
    this.write(`${name}.svg`, await renderSvg(spec));
    this.write(`${name}.vl.json`, JSON.stringify(spec, null, 1) + '\n');
  }
}
