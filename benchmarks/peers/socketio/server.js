#!/usr/bin/env node
// Reference Socket.IO 4 relay for Clipwire's benchmark suite: the stock Node
// stack doing the relay minimum (no persistence, no message acknowledgement),
// so the numbers compare Clipwire with what most teams would deploy.
//
//   node server.js --port P [--host 127.0.0.1] [--redis redis://127.0.0.1:6379]
//
// Prints exactly one line, "READY <port>", on stdout once it accepts
// connections (with --redis: once the adapter's Redis clients are connected).
// Everything else goes to stderr. SIGTERM / SIGINT close it with exit code 0.
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");

function parseArgs(argv) {
  const opts = { port: 0, host: "127.0.0.1", redis: null };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const eq = arg.indexOf("=");
    const name = eq === -1 ? arg : arg.slice(0, eq);
    const value = () => (eq === -1 ? argv[++i] : arg.slice(eq + 1));
    if (name === "--port") opts.port = Number(value());
    else if (name === "--host") opts.host = value();
    else if (name === "--redis") opts.redis = value();
    else if (name === "--help" || name === "-h") {
      process.stderr.write("usage: node server.js --port P [--host H] [--redis redis://HOST:PORT]\n");
      process.exit(0);
    } else {
      process.stderr.write(`unknown argument: ${arg}\n`);
      process.exit(2);
    }
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
    process.stderr.write("--port must be an integer in 0..65535\n");
    process.exit(2);
  }
  if (opts.redis === undefined || opts.redis === "") {
    process.stderr.write("--redis needs a URL\n");
    process.exit(2);
  }
  return opts;
}

// Ids are strings on the wire; numbers are accepted and read as their decimal text.
function id(value) {
  if (typeof value === "string") return value.length > 0 ? value : null;
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  return null;
}

async function attachRedis(io, url) {
  const { createClient } = require("redis");
  const { createAdapter } = require("@socket.io/redis-adapter");
  // Fail fast while starting (a wrong URL should not leave the caller waiting for
  // READY); once up, ride out Redis blips by reconnecting.
  let connected = false;
  const reconnectStrategy = (retries, cause) =>
    connected ? Math.min(50 * retries, 1000) : new Error(`cannot reach Redis at ${url}: ${cause.message}`);
  const pub = createClient({ url, socket: { reconnectStrategy } });
  const sub = pub.duplicate();
  let lastError = "";
  for (const client of [pub, sub]) {
    client.on("error", (err) => {
      // One line per distinct error, not one per retry.
      if (err.message !== lastError) process.stderr.write(`redis: ${err.message}\n`);
      lastError = err.message;
    });
  }
  await Promise.all([pub.connect(), sub.connect()]);
  connected = true;
  io.adapter(createAdapter(pub, sub));
  // The adapter subscribes without handing out the promise; commands on one
  // connection are answered in order, so once this round trip is back the
  // adapter is subscribed and READY means "fans out across nodes".
  const noop = () => {};
  await sub.subscribe("clipwire-bench:ready", noop);
  await sub.unsubscribe("clipwire-bench:ready", noop);
  return [pub, sub];
}

function handle(io, socket) {
  const user = socket.data.user;
  socket.join(`u:${user}`);

  socket.on("dm", (m) => {
    const to = m && id(m.to);
    if (to === null) return;
    io.to(`u:${to}`).emit("msg", { from: user, body: m.body });
  });

  socket.on("join", (m, ack) => {
    const room = m && id(m.room);
    if (room !== null) socket.join(`g:${room}`);
    if (typeof ack === "function") ack(room === null ? "bad room" : "ok");
  });

  socket.on("room", (m) => {
    const room = m && id(m.room);
    if (room === null) return;
    socket.to(`g:${room}`).emit("msg", { from: user, room, body: m.body });
  });

  socket.on("share", (m) => {
    if (!m || !Array.isArray(m.to)) return;
    const rooms = [];
    for (const t of m.to) {
      const to = id(t);
      if (to !== null) rooms.push(`u:${to}`);
    }
    // One emit to all the rooms: the packet is encoded once and a socket in
    // several of them gets it once.
    if (rooms.length > 0) io.to(rooms).emit("msg", { from: user, body: m.body });
  });
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const httpServer = http.createServer((req, res) => {
    res.writeHead(404).end();
  });
  const io = new Server(httpServer, {
    transports: ["websocket"],
    perMessageDeflate: false,
    httpCompression: false,
    serveClient: false,
  });
  const redisClients = opts.redis ? await attachRedis(io, opts.redis) : [];

  io.use((socket, next) => {
    const auth = socket.handshake.auth;
    const user = auth && id(auth.user);
    if (user === null) return next(new Error("auth.user is required"));
    socket.data.user = user;
    next();
  });
  io.on("connection", (socket) => handle(io, socket));

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    // io.close() disconnects every socket and closes the HTTP server.
    const force = setTimeout(() => process.exit(0), 3000);
    force.unref();
    io.close(async () => {
      await Promise.allSettled(redisClients.map((c) => c.quit()));
      process.exit(0);
    });
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);

  httpServer.on("error", (err) => {
    process.stderr.write(`listen failed: ${err.message}\n`);
    process.exit(1);
  });
  httpServer.listen(opts.port, opts.host, () => {
    process.stdout.write(`READY ${httpServer.address().port}\n`);
  });
}

main().catch((err) => {
  process.stderr.write(`${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
