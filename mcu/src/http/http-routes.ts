import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const clientRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'client-demo');

/** The demo page's files: a fixed map, so no request path ever reaches the file system. */
const STATIC_FILES: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/index.html': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
  '/app.js': { file: 'dist/app.js', type: 'text/javascript; charset=utf-8' },
  '/app.js.map': { file: 'dist/app.js.map', type: 'application/json' },
};

export type RouteHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void> | void;

export async function serveStatic(path: string, res: ServerResponse): Promise<boolean> {
  const entry = STATIC_FILES[path];
  if (!entry) return false;
  try {
    const body = await readFile(join(clientRoot, entry.file));
    res.writeHead(200, { 'content-type': entry.type, 'cache-control': 'no-cache' });
    res.end(body);
  } catch {
    res.writeHead(503, { 'content-type': 'text/plain' });
    res.end(`${entry.file} is missing: build the demo page with "npm run build"\n`);
  }
  return true;
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body, null, 2) + '\n');
}
