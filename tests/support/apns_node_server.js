// An independent APNs-like HTTP/2 peer (node's http2 module) for the APNs pusher integration test,
// so the pusher is not only tested against our own mock.
// Usage: node apns_node_server.js --cert C --key K [--port 0] [--max-streams N]
// Prints "LISTENING <port>" on stderr once ready, and per request one line
// "REQ <path> <header names in arrival order, comma-separated> auth=<yes|no>".
//   POST /3/device/<token>: no `authorization: bearer …` → 403 MissingProviderToken; no apns-topic →
//   400 MissingTopic; body > 4096 (5120 voip) → 413 PayloadTooLarge; token prefix 410 → 410
//   Unregistered with timestamp; 400b → 400 BadDeviceToken; 5030 → 503 (retry-after: 1); else 200
//   with apns-id echoed.
'use strict';
const http2 = require('http2');
const fs = require('fs');

const args = process.argv.slice(2);
function opt(name, dflt) {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
}
const port = parseInt(opt('--port', '0'), 10);
const settings = { maxConcurrentStreams: parseInt(opt('--max-streams', '100'), 10) };
const server = http2.createSecureServer({
  cert: fs.readFileSync(opt('--cert')),
  key: fs.readFileSync(opt('--key')),
  allowHTTP1: false,
  settings,
});
server.on('session', (s) => s.on('error', () => {}));
server.on('sessionError', () => {});

function fail(stream, status, reason, extra) {
  const h = Object.assign({ ':status': status, 'content-type': 'application/json' }, extra || {});
  stream.respond(h);
  const body = { reason };
  if (status === 410) body.timestamp = Date.now();
  stream.end(JSON.stringify(body));
}

server.on('stream', (stream, headers, flags, rawHeaders) => {
  stream.on('error', () => {});
  const path = headers[':path'] || '/';
  const names = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (!rawHeaders[i].startsWith(':')) names.push(rawHeaders[i]);
  }
  const auth = headers['authorization'] || '';
  process.stderr.write(`REQ ${path} ${names.join(',')} auth=${auth.startsWith('bearer ') ? 'yes' : 'no'}\n`);
  const chunks = [];
  stream.on('data', (c) => chunks.push(c));
  stream.on('end', () => {
    if (stream.destroyed || stream.closed) return;
    const body = Buffer.concat(chunks);
    if (headers[':method'] !== 'POST' || !path.startsWith('/3/device/')) return fail(stream, 404, 'BadPath');
    const token = path.substring('/3/device/'.length);
    if (!auth.startsWith('bearer ')) return fail(stream, 403, 'MissingProviderToken');
    if (!headers['apns-topic']) return fail(stream, 400, 'MissingTopic');
    const limit = headers['apns-push-type'] === 'voip' ? 5120 : 4096;
    if (body.length > limit) return fail(stream, 413, 'PayloadTooLarge');
    if (!/^[0-9a-fA-F]+$/.test(token)) return fail(stream, 400, 'BadDeviceToken');
    if (token.startsWith('410')) return fail(stream, 410, 'Unregistered');
    if (token.startsWith('400b')) return fail(stream, 400, 'BadDeviceToken');
    if (token.startsWith('5030')) return fail(stream, 503, 'ServiceUnavailable', { 'retry-after': '1' });
    stream.respond({ ':status': 200, 'apns-id': headers['apns-id'] || '' });
    stream.end();
  });
});

server.listen(port, 'localhost', () => {
  process.stderr.write(`LISTENING ${server.address().port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
