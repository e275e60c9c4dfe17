// Builds the SDK into dist/: v1.js (script tag, global `MqChat`), v1.mjs
// (ES module) and v1.d.ts (declarations), and prints their sizes. The
// output is committed and embedded in the mqchat binary; CI rebuilds it
// from these sources and the lockfile and fails when it differs.
//   node build.mjs [OUT_DIR]   (default: dist)
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';

const out = process.argv[2] || 'dist';
mkdirSync(out, { recursive: true });

const common = {
  bundle: true,
  minify: true,
  platform: 'browser',
  target: ['es2020'],
  legalComments: 'none',
  inject: ['src/shims/node-globals.js'],
  define: { global: 'globalThis', 'process.env.NODE_DEBUG': 'false' },
  alias: {
    debug: './src/shims/debug.cjs',
    'worker-timers': './src/shims/worker-timers.js',
    'lru-cache': './src/shims/lru-cache.js',
  },
  logLevel: 'warning',
};

await build({ ...common, entryPoints: ['src/global.js'], format: 'iife', outfile: join(out, 'v1.js') });
await build({ ...common, entryPoints: ['src/module.js'], format: 'esm', outfile: join(out, 'v1.mjs') });
copyFileSync('types/v1.d.ts', join(out, 'v1.d.ts'));

for (const file of ['v1.js', 'v1.mjs', 'v1.d.ts']) {
  const bytes = readFileSync(join(out, file));
  console.log(`${file}: ${bytes.length} bytes, ${gzipSync(bytes, { level: 9 }).length} gzipped`);
}
