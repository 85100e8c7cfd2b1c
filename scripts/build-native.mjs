#!/usr/bin/env node
// `npm run build:native`: builds the Node-API addon (crate native/node) with the napi-rs CLI into
// `moe-em.linux-x64-gnu.node` at the package root, and copies it into the platform package
// npm/linux-x64-gnu/ (what `npm pack npm/linux-x64-gnu` publishes). The addon is optional at run time (the
// TypeScript backend always works); set MOE_EM_SKIP_NATIVE=1 to skip this step on a machine without Rust.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const triple = 'linux-x64-gnu';
const binary = `moe-em.${triple}.node`;

if (process.env.MOE_EM_SKIP_NATIVE === '1') {
  console.log('build:native skipped (MOE_EM_SKIP_NATIVE=1): only the JavaScript backend will be available.');
  process.exit(0);
}

const cargo = spawnSync('cargo', ['--version'], { encoding: 'utf8' });
if (cargo.error || cargo.status !== 0) {
  console.error(
    'build:native: `cargo` was not found on PATH, so the native (Rust) backend cannot be built.\n' +
      '  Install Rust (https://rustup.rs) and run `npm run build:native` again, or set MOE_EM_SKIP_NATIVE=1\n' +
      "  to build without it (backend 'js' only; 'cpu' and 'cuda' then report E_BACKEND_UNAVAILABLE).",
  );
  process.exit(1);
}
if (process.platform !== 'linux' || process.arch !== 'x64') {
  console.error(`build:native: only ${triple} is supported, this is ${process.platform}-${process.arch}.`);
  process.exit(1);
}

// The CLI writes into a staging folder; the binary then replaces the old one by rename, so a process that
// has the old addon loaded keeps its (unlinked) copy instead of seeing the file rewritten under it.
const staging = join('target', 'napi-staging');
mkdirSync(join(root, staging), { recursive: true });
// @napi-rs/cli 2.x: a single file with no dependencies (3.x pulls platform packages of its own that break
// `npm ci` where a registry does not serve every platform). It runs `cargo build --release` in native/node and
// copies the cdylib to <staging>/moe-em.linux-x64-gnu.node (the name comes from package.json's "napi.name").
const napiCli = join(root, 'node_modules', '@napi-rs', 'cli', 'scripts', 'index.js');
const args = ['build', '--platform', '--release', '--strip', '--cargo-cwd', join('native', 'node'), staging];
const build = existsSync(napiCli)
  ? spawnSync(process.execPath, [napiCli, ...args], { cwd: root, stdio: 'inherit' })
  : spawnSync('npx', ['napi', ...args], { cwd: root, stdio: 'inherit' });
if (build.status !== 0) {
  console.error(`build:native: napi build failed (exit ${build.status ?? build.signal}).`);
  process.exit(1);
}
const built = join(root, staging, binary);
if (!existsSync(built)) {
  console.error(`build:native: the build finished but ${join(staging, binary)} is missing.`);
  process.exit(1);
}
copyFileSync(built, join(root, 'npm', triple, `${binary}.tmp`));
renameSync(join(root, 'npm', triple, `${binary}.tmp`), join(root, 'npm', triple, binary));
renameSync(built, join(root, binary));
console.log(`build:native: built ${binary} (and copied it into npm/${triple}/).`);
