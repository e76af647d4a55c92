/**
 * The shipped agent is one file: scripts/build-agent.ts bundles it (the same code as
 * `npm run build:agent`) into a temp outdir, and `node <outdir>/agent.mjs --config <file>` runs
 * from that directory, away from the repo's node_modules, as it does in the container image.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { type AgentBundle, buildAgent } from "../../scripts/build-agent.ts";
import { SIGNATURE_HEADER, sign } from "../../shared/signature.ts";
import { freePorts } from "../support/free-port.ts";
import { type ReportReceiver, startReportReceiver } from "../support/report-receiver.ts";

const root = join(import.meta.dirname, "../..");
const SECRET = "ship-test-agent-secret";

let dir: string;
let bundle: AgentBundle;
let receiver: ReportReceiver;
let child: ChildProcess | undefined;
let output = "";
let agentUrl: string;

/** Resolves when the agent logs a line matching `pattern` (no sleeps: its own log says it is up). */
async function waitForLog(c: ChildProcess, pattern: RegExp, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`timed out waiting for ${pattern}; output:\n${output}`)),
      timeoutMs,
    );
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const line = output.split("\n").find((l) => pattern.test(l));
      if (line) {
        clearTimeout(timer);
        resolve(line);
      }
    };
    c.stdout?.on("data", onData);
    c.stderr?.on("data", onData);
    c.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`the bundled agent exited (${code}) before ${pattern}; output:\n${output}`));
    });
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "turnout-ship-bundle-"));
  bundle = await buildAgent(join(dir, "dist"));
  console.log(`agent bundle: ${(bundle.bytes / 1024 / 1024).toFixed(1)} MiB (${bundle.bytes} bytes)`);

  receiver = await startReportReceiver(SECRET);
  // The repo's sample targets, listening on a free port; the sandbox's BIND and etcd move from the
  // sample's fixed ports to free ones (all distinct) so a running `npm start` or a parallel test
  // never clashes.
  const fixedPorts = ["127.0.0.1:5353", "127.0.0.1:23791", "127.0.0.1:23792"];
  const [port, ...movedTo] = await freePorts(1 + fixedPorts.length);
  let text = readFileSync(join(root, "agent-a.config.json"), "utf8");
  fixedPorts.forEach((fixed, i) => {
    text = text.replaceAll(fixed, `127.0.0.1:${movedTo[i]}`);
  });
  const sample = JSON.parse(text) as Record<string, unknown>;
  const config = { ...sample, listen: `127.0.0.1:${port}`, reportUrl: receiver.url };
  const configFile = join(dir, "agent.json");
  writeFileSync(configFile, JSON.stringify(config));

  // Only what a pod would have: no repo, no node_modules, no kubeconfig (so the sandbox).
  child = spawn(process.execPath, [bundle.outfile, "--config", configFile], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? "", HOME: dir, TURNOUT_AGENT_SECRET: SECRET, TSIG_SECRET: "c2VjcmV0" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  await waitForLog(child, /agent listening/, 15_000);
  agentUrl = `http://127.0.0.1:${port}`;
}, 60_000);

afterAll(async () => {
  if (child && child.exitCode === null) {
    const c = child;
    await new Promise<void>((resolve) => {
      c.once("exit", () => resolve());
      c.kill("SIGTERM");
    });
  }
  await receiver?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("the bundled agent (dist/agent.mjs)", () => {
  it("is a single ES module file with the createRequire banner", () => {
    const head = readFileSync(bundle.outfile, "utf8").slice(0, 600);
    expect(head).toContain("createRequire");
    expect(bundle.bytes).toBeGreaterThan(100_000);
  });

  it("starts from its own directory and answers /healthz in sandbox mode with the package version", async () => {
    const res = await fetch(`${agentUrl}/healthz`);
    expect(res.status).toBe(200);
    const body = z
      .object({ ok: z.boolean(), mode: z.string(), version: z.string(), targets: z.unknown() })
      .parse(await res.json());
    const pkg = z.object({ version: z.string() }).parse(JSON.parse(readFileSync(join(root, "package.json"), "utf8")));
    expect(body).toMatchObject({ ok: true, mode: "sandbox", version: pkg.version });
    expect((await fetch(`${agentUrl}/readyz`)).status).toBe(200);
    expect(await (await fetch(`${agentUrl}/metrics`)).text()).toContain("turnout_agent_lease_leader");
  });

  it("runs a signed route-swap drill end to end and sends a signed report", async () => {
    const body = JSON.stringify({
      id: "egress-gw:1",
      target: "egress-gw",
      kind: "drill",
      from: "primary",
      to: "secondary",
      dryRun: true,
      issuedAt: new Date().toISOString(),
      // The shipped local config is agent-a's (design §11.1); an action for another agent is refused.
      agent: "agent-a",
    });
    const res = await fetch(`${agentUrl}/v1/actions`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        [SIGNATURE_HEADER]: await sign(SECRET, body, Date.now() / 1000),
      },
      body,
    });
    expect(res.status).toBe(202);
    // The receiver verifies Turnout-Signature before recording a report.
    const report = await receiver.waitFor((r) => r.actionId === "egress-gw:1" && r.status !== "running", 15_000);
    expect(report).toMatchObject({ status: "succeeded", dryRun: true });
    expect(receiver.rejected).toEqual([]);
  });

  it("refuses an unsigned action (401)", async () => {
    const res = await fetch(`${agentUrl}/v1/actions`, { method: "POST", body: "{}" });
    expect(res.status).toBe(401);
  });
});
