#!/usr/bin/env node
// `node scripts/pack.mjs <dest-dir>`: the release tarballs, exactly what would be published.
//   1. the platform package npm/linux-x64-gnu (the prebuilt addon; build it first with `npm run build`);
//   2. the root package, whose optionalDependencies entry for the platform package is rewritten from the
//      repository's `file:npm/linux-x64-gnu` (what lets `npm ci` work before anything is published) to the
//      platform package's version (what users install from the registry).
// Both tarballs are built from staged copies, so the working tree is never modified.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dest = resolve(process.argv[2] ?? '.');
const platformDir = join(root, 'npm', 'linux-x64-gnu');
const readJson = (p) => JSON.parse(readFileSync(p, 'utf8'));

const platform = readJson(join(platformDir, 'package.json'));
const addon = join(platformDir, platform.main);
if (!existsSync(addon)) {
  console.error(`pack: ${platform.main} is missing from npm/linux-x64-gnu; run \`npm run build\` first.`);
  process.exit(1);
}
const pkg = readJson(join(root, 'package.json'));
if (platform.version !== pkg.version) {
  console.error(`pack: version mismatch: moe-em ${pkg.version}, ${platform.name} ${platform.version}.`);
  process.exit(1);
}
mkdirSync(dest, { recursive: true });

const pack = (dir) => {
  const out = execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dest],
    { cwd: dir, encoding: 'utf8' });
  const [{ filename }] = JSON.parse(out);
  console.log(`pack: ${join(dest, filename)}`);
};

pack(platformDir);

// Stage the root package: the files `npm pack` would take, plus a package.json with the registry spec.
const listing = JSON.parse(execFileSync('npm', ['pack', '--ignore-scripts', '--dry-run', '--json'],
  { cwd: root, encoding: 'utf8' }));
const stage = mkdtempSync(join(tmpdir(), 'moe-em-pack-'));
try {
  for (const { path } of listing[0].files) {
    mkdirSync(dirname(join(stage, path)), { recursive: true });
    cpSync(join(root, path), join(stage, path));
  }
  pkg.optionalDependencies = { ...pkg.optionalDependencies, [platform.name]: platform.version };
  delete pkg.devDependencies;
  writeFileSync(join(stage, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);
  pack(stage);
} finally {
  rmSync(stage, { recursive: true, force: true });
}
