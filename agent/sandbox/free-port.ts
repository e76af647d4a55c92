/**
 * Free TCP ports on 127.0.0.1 for the sandbox's local servers (BIND, etcd) and for tests: bind to
 * port 0, read the port the kernel chose, release it. The port may in principle be taken again
 * before the caller binds it; fine for a sandbox and for tests on one machine.
 */
import { createServer, type Server } from "node:net";

/** Reserves `n` distinct free ports on 127.0.0.1 (all held open at once so they differ). */
export async function freePorts(n: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < n; i++) {
      const s = createServer();
      servers.push(s);
      ports.push(
        await new Promise<number>((resolve, reject) => {
          s.once("error", reject);
          s.listen(0, "127.0.0.1", () => {
            const addr = s.address();
            resolve(typeof addr === "object" && addr ? addr.port : 0);
          });
        }),
      );
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

/** One free TCP port on 127.0.0.1 (released before it is returned). */
export async function freePort(): Promise<number> {
  const [port = 0] = await freePorts(1);
  return port;
}
