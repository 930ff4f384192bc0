// Tiny independent HTTP/2 test peer for the h2 client integration tests (node's http2 module).
// Usage: node h2_echo_server.js --cert C --key K [--port 0] [--max-streams N] [--plain]
// Prints "LISTENING <port>" on stderr once ready. Paths:
//   /echo            200, body = request body, headers apns-id (echoed or fixed), x-auth (authorization)
//   /status/<code>   <code> with {"reason":"R<code>"}
//   /hang            never answers (client timeouts)
//   /goaway          answers 200, then GOAWAY (last stream id = this stream) and closes later
//   /stats           200 {"sessions":n,"requests":m}
'use strict';
const http2 = require('http2');
const fs = require('fs');

const args = process.argv.slice(2);
function opt(name, dflt) {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
}
const plain = args.includes('--plain');
const port = parseInt(opt('--port', '0'), 10);
const maxStreams = parseInt(opt('--max-streams', '100'), 10);

let sessions = 0;
let requests = 0;
const settings = { maxConcurrentStreams: maxStreams };
const server = plain
  ? http2.createServer({ settings })
  : http2.createSecureServer({
      cert: fs.readFileSync(opt('--cert')),
      key: fs.readFileSync(opt('--key')),
      allowHTTP1: false,
      settings,
    });

server.on('session', (session) => {
  sessions++;
  session.on('error', () => {});
});
server.on('sessionError', () => {});

server.on('stream', (stream, headers) => {
  stream.on('error', () => {});  // a client reset must not kill the process
  requests++;
  const path = headers[':path'] || '/';
  const chunks = [];
  stream.on('data', (c) => chunks.push(c));
  stream.on('end', () => {
    const body = Buffer.concat(chunks);
    if (stream.destroyed || stream.closed) return;
    if (path === '/echo') {
      stream.respond({
        ':status': 200,
        'apns-id': headers['apns-id'] || '00000000-0000-0000-0000-000000000000',
        'x-auth': headers['authorization'] || '',
      });
      stream.end(body);
    } else if (path.startsWith('/status/')) {
      const code = parseInt(path.substring(8), 10) || 500;
      const h = { ':status': code, 'content-type': 'application/json' };
      if (code === 429 || code === 503) h['retry-after'] = '7';
      stream.respond(h);
      stream.end(JSON.stringify({ reason: 'R' + code }));
    } else if (path === '/hang') {
      // never answer
    } else if (path === '/goaway') {
      stream.respond({ ':status': 200 });
      stream.end('bye');
      const s = stream.session;
      setImmediate(() => {
        try { s.goaway(0, stream.id, Buffer.from('{"reason":"Shutdown"}')); } catch (e) {}
        setTimeout(() => { try { s.close(); } catch (e) {} }, 200);
      });
    } else if (path === '/stats') {
      stream.respond({ ':status': 200 });
      stream.end(JSON.stringify({ sessions, requests }));
    } else {
      stream.respond({ ':status': 404 });
      stream.end();
    }
  });
});

server.listen(port, 'localhost', () => {
  process.stderr.write('LISTENING ' + server.address().port + '\n');
});
process.on('SIGTERM', () => process.exit(0));
