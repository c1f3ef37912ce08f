// Bundles the demo page (TypeScript + socket.io-client) into client-demo/dist/app.js.
import { build } from 'esbuild';

await build({
  entryPoints: ['client-demo/src/main.ts'],
  outfile: 'client-demo/dist/app.js',
  bundle: true,
  format: 'esm',
  target: ['chrome110'],
  sourcemap: true,
  minify: false,
  logLevel: 'warning',
});
