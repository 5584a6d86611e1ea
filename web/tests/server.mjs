// A static file server on 127.0.0.1 for the tests: the page from web/, and the shared
// fixtures under /shared/ (so the page can load ../shared/fixtures/... by URL).
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.wasm': 'application/wasm',
  '.onnx': 'application/octet-stream',
  '.safetensors': 'application/octet-stream',
};

// Resolves a URL path under one of the mounts, refusing to leave it.
function resolve(mounts, urlPath) {
  const decoded = decodeURIComponent(urlPath.split('?')[0]);
  for (const [prefix, dir] of mounts) {
    if (!decoded.startsWith(prefix)) continue;
    const file = path.resolve(dir, '.' + path.sep + decoded.slice(prefix.length));
    if (file !== path.resolve(dir) && !file.startsWith(path.resolve(dir) + path.sep)) return null;
    return file;
  }
  return null;
}

/** Serves `mounts` ([[urlPrefix, directory], ...], longest prefix first). */
export function serve(mounts) {
  const sorted = [...mounts].sort((a, b) => b[0].length - a[0].length);
  const server = http.createServer((req, res) => {
    let file = resolve(sorted, req.url);
    if (file && fs.existsSync(file) && fs.statSync(file).isDirectory()) file = path.join(file, 'index.html');
    if (!file || !fs.existsSync(file)) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
      return;
    }
    res.writeHead(200, {
      'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream',
      'cache-control': 'no-store',
    });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((ok) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      ok({ url: `http://127.0.0.1:${port}`, close: () => new Promise((done) => server.close(done)) });
    });
  });
}
