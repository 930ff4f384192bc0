// TLS front end for the cli-https integration tests: node's `https` module (HTTP/1.1, ALPN
// http/1.1) on 127.0.0.1 with the test server certificate, forwarding every request to a plain
// HTTP bouncer on 127.0.0.1:<target-port> and its answer back, plus "x-via-tls-proxy: 1" so a
// test can tell the answer came through here.
// Usage: node https_bouncer_proxy.js --cert C --key K --target-port P [--port 0]
// Prints "LISTENING <port>" on stderr once ready. Own paths (not forwarded):
//   /__proxy/echo    200, body = request body (large uploads/downloads through TLS)
//   /__proxy/stats   200 {"forwarded":n}
'use strict';
const https = require('https');
const http = require('http');
const fs = require('fs');

const args = process.argv.slice(2);
function opt(name, dflt) {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
}
const targetPort = parseInt(opt('--target-port', '0'), 10);
const port = parseInt(opt('--port', '0'), 10);
const kMaxBody = 64 * 1024 * 1024;

let forwarded = 0;

const server = https.createServer({
  cert: fs.readFileSync(opt('--cert')),
  key: fs.readFileSync(opt('--key')),
  ALPNProtocols: ['http/1.1'],
}, (req, res) => {
  req.on('error', () => {});
  res.on('error', () => {});
  if (req.url === '/__proxy/echo') {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > kMaxBody) { req.destroy(); return; }
      chunks.push(c);
    });
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      res.writeHead(200, { 'content-type': 'application/octet-stream',
                           'content-length': body.length, 'x-via-tls-proxy': '1' });
      res.end(body);
    });
    return;
  }
  if (req.url === '/__proxy/stats') {
    res.writeHead(200, { 'content-type': 'application/json', 'x-via-tls-proxy': '1' });
    res.end(JSON.stringify({ forwarded }));
    return;
  }
  forwarded++;
  const headers = Object.assign({}, req.headers);
  headers['connection'] = 'close';
  const up = http.request({ host: '127.0.0.1', port: targetPort, method: req.method,
                            path: req.url, headers, timeout: 20000 }, (ur) => {
    const h = Object.assign({}, ur.headers, { 'x-via-tls-proxy': '1' });
    res.writeHead(ur.statusCode, h);
    ur.pipe(res);
  });
  up.on('timeout', () => up.destroy(new Error('upstream timeout')));
  up.on('error', (e) => {
    if (res.headersSent) { res.destroy(); return; }
    res.writeHead(502, { 'content-type': 'text/plain', 'x-via-tls-proxy': '1' });
    res.end('proxy: ' + e.message);
  });
  req.pipe(up);
});
server.on('tlsClientError', () => {});  // a client refusing our certificate is a test case
server.listen(port, '127.0.0.1', () => {
  process.stderr.write('LISTENING ' + server.address().port + '\n');
});
