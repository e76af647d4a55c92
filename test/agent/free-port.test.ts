import { createSocket } from "node:dgram";
import { createServer } from "node:net";
import { describe, expect, it } from "vitest";
import { freePorts } from "../../agent/sandbox/free-port.ts";

describe("freePorts", () => {
  it("gives distinct ports below the kernel's ephemeral range, each then bindable for TCP and UDP", async () => {
    const ports = await freePorts(8);
    expect(new Set(ports).size).toBe(8);
    for (const port of ports) {
      expect(port).toBeGreaterThanOrEqual(1024);
      expect(port).toBeLessThan(32_768);
      const tcp = createServer();
      await new Promise<void>((resolve, reject) => {
        tcp.once("error", reject);
        tcp.listen(port, "127.0.0.1", resolve);
      });
      const udp = createSocket("udp4");
      await new Promise<void>((resolve, reject) => {
        udp.once("error", reject);
        udp.bind(port, "127.0.0.1", resolve);
      });
      udp.close();
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
    }
  });

  it("skips ports taken for UDP only, and says so when none is left", async () => {
    // A window of four ports: UDP-bind three of them, and the fourth is the only answer.
    const [base = 0] = await freePorts(1, [20_000, 32_000 - 4]);
    const window = [base, base + 1, base + 2, base + 3] as const;
    const sockets = [];
    for (const port of window.slice(0, 3)) {
      const udp = createSocket("udp4");
      await new Promise<void>((resolve, reject) => {
        udp.once("error", reject);
        udp.bind(port, "127.0.0.1", resolve);
      });
      sockets.push(udp);
    }
    try {
      const range = [window[0], window[3] + 1] as const;
      for (let i = 0; i < 5; i++) expect(await freePorts(1, range)).toEqual([window[3]]);
      await expect(freePorts(2, range)).rejects.toThrow(/no 2 free ports on 127\.0\.0\.1/);
    } finally {
      for (const udp of sockets) udp.close();
    }
  });
});
