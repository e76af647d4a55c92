/**
 * Free ports on 127.0.0.1 for the sandbox's local servers (BIND, etcd) and for tests.
 *
 * Ports come from below the kernel's ephemeral range (Linux's default is 32768–60999), not from
 * `listen(0)`: a port the kernel handed out and we released can be handed out again at once as
 * the source port of any outgoing connection on the machine (a parallel test's HTTP client, say),
 * and the server we start on it then fails with EADDRINUSE. Below that range only a process that
 * asks for the exact number can take it. Each candidate is proved free for both TCP and UDP
 * (BIND listens on both) by binding it, and all are held until every one is chosen so they differ.
 */
import { createSocket, type Socket } from "node:dgram";
import { createServer, type Server } from "node:net";

const LOW = 20_000;
const HIGH = 32_000;
const ATTEMPTS = 200;

interface Held {
  tcp: Server;
  udp: Socket;
}

function listenTcp(port: number): Promise<Server | undefined> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(undefined));
    s.listen({ port, host: "127.0.0.1", exclusive: true }, () => resolve(s));
  });
}

function bindUdp(port: number): Promise<Socket | undefined> {
  return new Promise((resolve) => {
    const s = createSocket("udp4");
    s.once("error", () => {
      s.close();
      resolve(undefined);
    });
    s.bind({ port, address: "127.0.0.1", exclusive: true }, () => resolve(s));
  });
}

async function hold(port: number): Promise<Held | undefined> {
  const tcp = await listenTcp(port);
  if (!tcp) return undefined;
  const udp = await bindUdp(port);
  if (!udp) {
    await new Promise<void>((r) => tcp.close(() => r()));
    return undefined;
  }
  return { tcp, udp };
}

/**
 * Reserves `n` distinct ports on 127.0.0.1, each free for TCP and UDP, and releases them.
 * `range` ([low, high), default 20000–32000) is for tests.
 */
export async function freePorts(n: number, range: readonly [number, number] = [LOW, HIGH]): Promise<number[]> {
  const [low, high] = range;
  const held = new Map<number, Held>();
  try {
    for (let attempt = 0; held.size < n; attempt++) {
      if (attempt >= ATTEMPTS) throw new Error(`no ${n} free ports on 127.0.0.1 in ${low}-${high}`);
      const port = low + Math.floor(Math.random() * (high - low));
      if (held.has(port)) continue;
      const h = await hold(port);
      if (h) held.set(port, h);
    }
    return [...held.keys()];
  } finally {
    await Promise.all(
      [...held.values()].map(
        ({ tcp, udp }) =>
          new Promise<void>((resolve) => {
            udp.close();
            tcp.close(() => resolve());
          }),
      ),
    );
  }
}

/** One port on 127.0.0.1 free for TCP and UDP (released before it is returned). */
export async function freePort(): Promise<number> {
  const [port = 0] = await freePorts(1);
  return port;
}
