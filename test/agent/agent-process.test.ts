import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { freePort } from "../support/free-port.ts";

const root = join(import.meta.dirname, "../..");

/**
 * Everything a child prints, kept from the moment it is spawned, so waiting for a second line
 * never misses one that arrived in the same chunk as (or before) the first.
 */
const outputs = new WeakMap<ChildProcess, { text: string; changed: Set<() => void> }>();

function captured(child: ChildProcess): { text: string; changed: Set<() => void> } {
  let out = outputs.get(child);
  if (!out) {
    const o = { text: "", changed: new Set<() => void>() };
    const onData = (chunk: Buffer) => {
      o.text += chunk.toString();
      for (const f of [...o.changed]) f();
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    outputs.set(child, o);
    out = o;
  }
  return out;
}

async function waitForLine(child: ChildProcess, pattern: RegExp, timeoutMs = 10_000): Promise<string> {
  const out = captured(child);
  return new Promise((resolve, reject) => {
    const check = () => {
      const line = out.text.split("\n").find((l) => pattern.test(l));
      if (!line) return;
      clearTimeout(timer);
      out.changed.delete(check);
      resolve(line);
    };
    const timer = setTimeout(() => {
      out.changed.delete(check);
      reject(new Error(`timed out waiting for ${pattern}; output:\n${out.text}`));
    }, timeoutMs);
    out.changed.add(check);
    check();
  });
}

let child: ChildProcess | undefined;
afterEach(() => {
  child?.kill("SIGTERM");
  child = undefined;
});

describe("agent process", () => {
  it("serves /healthz and /readyz in sandbox mode when there is no kubeconfig", async () => {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), "turnout-agent-"));
    const cfg = join(dir, "agent.yaml");
    writeFileSync(cfg, `listen: "127.0.0.1:${port}"\nreportUrl: http://127.0.0.1:1/v1/agent/reports\ntargets: {}\n`);
    child = spawn(process.execPath, ["agent/main.ts", "--config", cfg], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const warning = await waitForLine(child, /SANDBOX/);
    expect(JSON.parse(warning)).toMatchObject({ level: "warn", mode: "sandbox" });
    await waitForLine(child, /agent listening/);
    const health = (await (await fetch(`http://127.0.0.1:${port}/healthz`)).json()) as { ok: boolean; mode: string };
    expect(health).toMatchObject({ ok: true, mode: "sandbox" });
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect(ready.status).toBe(200);
  });

  it("takes its config from TURNOUT_AGENT_CONFIG", async () => {
    const port = await freePort();
    const text = JSON.stringify({ listen: `127.0.0.1:${port}`, reportUrl: "http://127.0.0.1:1/r", targets: {} });
    child = spawn(process.execPath, ["agent/main.ts"], {
      cwd: root,
      env: { ...process.env, TURNOUT_AGENT_CONFIG: text },
      stdio: ["ignore", "pipe", "pipe"],
    });
    await waitForLine(child, /agent listening/);
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
  });

  it("serves the action API and metrics, and on SIGTERM stops gracefully with exit code 0", async () => {
    const port = await freePort();
    const text = JSON.stringify({ listen: `127.0.0.1:${port}`, reportUrl: "http://127.0.0.1:1/r", targets: {} });
    const c = spawn(process.execPath, ["agent/main.ts"], {
      cwd: root,
      env: { ...process.env, TURNOUT_AGENT_CONFIG: text, TURNOUT_AGENT_SECRET: "s" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child = c;
    await waitForLine(c, /agent listening/);
    const unsigned = await fetch(`http://127.0.0.1:${port}/v1/actions`, { method: "POST", body: "{}" });
    expect(unsigned.status).toBe(401);
    expect(unsigned.headers.get("content-type")).toBe("application/problem+json");
    expect(await unsigned.json()).toMatchObject({ reason: "missing" });
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toContain("turnout_agent_lease_leader");
    const exited = new Promise<number | null>((resolve) => c.once("exit", (code) => resolve(code)));
    const stopping = waitForLine(c, /"msg":"stopping"/);
    c.kill("SIGTERM");
    await stopping;
    expect(await exited).toBe(0);
  });

  it("exits 1 on a bad config, printing every problem as path: message", () => {
    const dir = mkdtempSync(join(tmpdir(), "turnout-agent-"));
    const cfg = join(dir, "agent.json");
    writeFileSync(cfg, JSON.stringify({ listen: "nowhere", targets: { "dns-a": { kind: "dns-flip" } } }));
    const r = spawnSync(process.execPath, ["agent/main.ts", "--config", cfg], { cwd: root, encoding: "utf8" });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("listen: expected host:port");
    expect(r.stderr).toContain("reportUrl: ");
    expect(r.stderr).toContain("targets.dns-a.provider: ");
    expect(r.stderr).toContain("targets.dns-a.record: ");
  });
});
