// A TCP relay in front of the server, for the tests of streams over HTTP:
// it sees when the server ends a connection (a client that went away, seen
// from the server's side), and it drops connections as a network does
// (both ends cut, no close delimiter, no complete).
import net from "node:net";

// startRelay listens on a free port of 127.0.0.1 and relays each
// connection to target (the server's base URL). It returns the relay's
// base URL, its connections ({ serverEnded: Promise, drop() }, in the
// order they were opened), dropAll() and close().
export async function startRelay(target) {
  const { hostname, port } = new URL(target);
  const connections = [];
  const sockets = new Set();
  const relay = net.createServer((client) => {
    const server = net.connect(Number(port), hostname);
    sockets.add(client).add(server);
    let ended;
    const serverEnded = new Promise((resolve) => (ended = resolve));
    // The server ending its side (FIN) or the connection closing: either
    // means the server is done with the request.
    server.on("end", ended).on("close", ended);
    client.pipe(server);
    server.pipe(client);
    // A client that goes away (an aborted fetch destroys its socket) ends
    // the relay's side towards the server, as the client's own FIN would;
    // what the server still sends is read and dropped, so that its end is
    // seen.
    client.on("close", () => {
      server.unpipe(client);
      server.resume();
      server.end();
    });
    server.on("close", () => client.destroy());
    client.on("error", () => {});
    server.on("error", () => {});
    client.on("close", () => sockets.delete(client));
    server.on("close", () => sockets.delete(server));
    connections.push({
      serverEnded,
      drop() {
        client.destroy();
        server.destroy();
      },
    });
  });
  await new Promise((resolve, reject) => relay.once("error", reject).listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${relay.address().port}`,
    connections,
    dropAll() {
      for (const c of connections) c.drop();
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => relay.close(resolve));
    },
  };
}
