import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const run = (...args: string[]) =>
  spawnSync(process.execPath, ["scripts/config-check.ts", ...args], {
    encoding: "utf8",
    cwd: join(import.meta.dirname, "../.."),
  });

describe("npm run config:check", () => {
  it("exits 0 for the repo's worker and agent configs", () => {
    const r = run("turnout.config.json", "agent-a.config.json", "agent-b.config.json");
    expect(r.stdout).toContain("turnout.config.json: valid worker config");
    expect(r.stdout).toContain("agent-a.config.json: valid agent config");
    expect(r.stdout).toContain("agent-b.config.json: valid agent config");
    expect(r.status).toBe(0);
  });

  it("lists every problem as path: message and exits 1", () => {
    const dir = mkdtempSync(join(tmpdir(), "turnout-cfg-"));
    const bad = join(dir, "bad.json");
    writeFileSync(bad, JSON.stringify({ agent: { url: "nope" }, targets: { x: { sides: { primary: {} } } } }));
    const r = run(bad);
    expect(r.status).toBe(1);
    const lines = r.stdout.trim().split("\n").slice(1);
    expect(lines).toContain("agent.url: Invalid URL");
    expect(lines).toContain("targets.x.sides.primary: give `matchers` or `anyOf`");
    expect(lines.some((l) => l.startsWith("targets.x.sides.secondary: "))).toBe(true);
    for (const line of lines) expect(line).toMatch(/^[^:\s]+: .+/);
  });

  it("reads YAML agent configs and reports unparsable files", () => {
    const dir = mkdtempSync(join(tmpdir(), "turnout-cfg-"));
    const yaml = join(dir, "agent.yaml");
    writeFileSync(yaml, "reportUrl: http://127.0.0.1:8787/v1/agent/reports\ntargets: {}\n");
    expect(run(yaml).status).toBe(0);
    const broken = join(dir, "broken.json");
    writeFileSync(broken, "{ not json");
    const r = run(broken);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/\(root\): cannot read or parse/);
  });
});
