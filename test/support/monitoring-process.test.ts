/**
 * spawnServer owns the temp dir it is given: a server that never becomes ready leaves no dir
 * behind (each monitoring helper used to remove it itself), and stopping a ready one removes it.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { spawnServer } from "./monitoring-process.ts";

describe("spawnServer's owned dir", () => {
  it("is removed when the server exits before it is ready, and the error names the server", async () => {
    const dir = mkdtempSync(join(tmpdir(), "turnout-spawn-test-"));
    await expect(
      spawnServer({ name: "quitter", command: "sh", args: ["-c", "exit 3"], ready: async () => false, ownedDir: dir }),
    ).rejects.toThrow(/quitter exited/);
    expect(existsSync(dir)).toBe(false);
  });

  it("is removed when the server is not ready in time", async () => {
    const dir = mkdtempSync(join(tmpdir(), "turnout-spawn-test-"));
    await expect(
      spawnServer({
        name: "sleeper",
        command: "sleep",
        args: ["30"],
        ready: async () => false,
        timeoutMs: 300,
        ownedDir: dir,
      }),
    ).rejects.toThrow(/sleeper was not ready within 300 ms/);
    expect(existsSync(dir)).toBe(false);
  });

  it("stays while the server runs and is removed when it stops; a dir it does not own stays", async () => {
    const owned = mkdtempSync(join(tmpdir(), "turnout-spawn-test-"));
    const server = await spawnServer({
      name: "sleeper",
      command: "sleep",
      args: ["30"],
      ready: async () => true,
      ownedDir: owned,
    });
    expect(existsSync(owned)).toBe(true);
    await server.stop();
    expect(server.running()).toBe(false);
    expect(existsSync(owned)).toBe(false);

    const kept = mkdtempSync(join(tmpdir(), "turnout-spawn-test-"));
    const other = await spawnServer({
      name: "sleeper",
      command: "sleep",
      args: ["30"],
      cwd: kept,
      ready: async () => true,
    });
    await other.stop();
    expect(existsSync(kept)).toBe(true);
    rmSync(kept, { recursive: true, force: true });
  });
});
