// Builds the web client: esbuild bundles src/main.tsx (TypeScript + Preact)
// and its CSS into content-hashed files under OUTDIR/assets/, then writes
// OUTDIR/index.html naming them, with Subresource Integrity hashes. With
// --tests DIR it also bundles test/*.test.ts for Node (the crypto interop
// check runs there, no browser needed).
//
//   node build.mjs [--outdir dist] [--tests DIR] [--dev]
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const outdir = path.resolve(opt('--outdir', path.join(here, 'dist')));
const testsDir = opt('--tests', null);
const dev = args.includes('--dev');

// The Signal port falls back to msrcrypto when there is no WebCrypto; every
// place we run has WebCrypto (a secure context, or Node), so leave it out.
const noMsrcrypto = {
  name: 'no-msrcrypto',
  setup(build) {
    build.onResolve({ filter: /msrcrypto$/ }, () => ({ path: 'msrcrypto', namespace: 'stub' }));
    build.onLoad({ filter: /.*/, namespace: 'stub' }, () => ({
      contents: 'module.exports = undefined;',
      loader: 'js',
    }));
  },
};

const common = {
  bundle: true,
  jsx: 'automatic',
  jsxImportSource: 'preact',
  plugins: [noMsrcrypto],
  logLevel: 'warning',
  legalComments: 'linked',
};

rmSync(path.join(outdir, 'assets'), { recursive: true, force: true });
mkdirSync(path.join(outdir, 'assets'), { recursive: true });
const result = await esbuild.build({
  ...common,
  entryPoints: [path.join(here, 'src/main.tsx')],
  outdir: path.join(outdir, 'assets'),
  entryNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  format: 'esm',
  target: ['chrome110', 'firefox115', 'safari16'],
  minify: !dev,
  sourcemap: dev ? 'linked' : false,
  metafile: true,
});

const sri = (file) =>
  'sha384-' + createHash('sha384').update(readFileSync(file)).digest('base64');
let script = null;
let style = null;
for (const [file, meta] of Object.entries(result.metafile.outputs)) {
  const abs = path.resolve(file);
  if (meta.entryPoint && file.endsWith('.js')) script = abs;
  if (file.endsWith('.css')) style = abs;
}
if (!script) throw new Error('build: no script output');
const url = (abs) => '/assets/' + path.basename(abs);
const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light">
<title>Parley</title>
${style ? `<link rel="stylesheet" href="${url(style)}" integrity="${sri(style)}">\n` : ''}<script type="module" src="${url(script)}" integrity="${sri(script)}"></script>
</head>
<body>
<noscript>Parley needs JavaScript.</noscript>
<div id="app"></div>
</body>
</html>
`;
writeFileSync(path.join(outdir, 'index.html'), html);

if (testsDir) {
  mkdirSync(testsDir, { recursive: true });
  const tests = readdirSync(path.join(here, 'test')).filter((f) => f.endsWith('.test.ts'));
  await esbuild.build({
    ...common,
    entryPoints: tests.map((f) => path.join(here, 'test', f)),
    outdir: testsDir,
    outExtension: { '.js': '.mjs' },
    platform: 'node',
    format: 'esm',
    target: 'node20',
    // The port is CommonJS (require, __dirname in its emscripten curve);
    // give the ESM bundle those.
    banner: {
      js: [
        "import { createRequire as __cr } from 'node:module';",
        "import { fileURLToPath as __fu } from 'node:url';",
        "import { dirname as __dn } from 'node:path';",
        'const require = __cr(import.meta.url);',
        'const __filename = __fu(import.meta.url);',
        'const __dirname = __dn(__filename);',
      ].join(' '),
    },
  });
}
console.log(`web: built ${path.relative(process.cwd(), outdir) || '.'} (${url(script)})`);
