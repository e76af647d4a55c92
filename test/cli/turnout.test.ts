/**
 * The `turnout` CLI (design §10) as an operator runs it: the real bin (bin/turnout.ts, started by
 * its shebang on Node 24) against the real worker in workerd (`wrangler dev`).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { alertmanagerBody, postAlertmanager } from "../support/alertmanager-body.ts";
import { freePort } from "../support/free-port.ts";
import { credentialVars, workerCredentials } from "../support/worker-credentials.ts";
import { startWorker, type WorkerProcess } from "../support/worker-process.ts";

const root = join(import.meta.dirname, "../..");
const BIN = join(root, "bin/turnout.ts");
const CREDENTIALS = workerCredentials("cli");
const { operator: TOKEN, viewer: VIEWER, alertmanager: AM_TOKEN } = CREDENTIALS;
const ALICE = "cli-alice-operator-token";
const BOB = "cli-bob-operator-token-0";
const TARGET = "cli-gw";
const OTHER = "cli-dns";

let worker: WorkerProcess | undefined;

/** The CLI's environment: PATH starts with this Node 24, so the shebang's `env node` finds it. */
function cliEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const { TURNOUT_URL: _u, TURNOUT_TOKEN: _t, ...rest } = process.env;
  return { ...rest, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ""}`, ...extra };
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the bin to completion (asynchronously: the fake servers below share this event loop). */
function turnout(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, args, { cwd: root, env: cliEnv({ TURNOUT_TOKEN: TOKEN, TURNOUT_URL: url(), ...env }) });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function url(): string {
  if (!worker) throw new Error("worker not started");
  return worker.url;
}

async function alert(side: "primary" | "secondary", fingerprint: string): Promise<void> {
  const res = await postAlertmanager(
    url(),
    AM_TOKEN,
    alertmanagerBody({ labels: { alertname: "CliGatewayDown", side }, fingerprint, startsAt: Date.now() }),
  );
  expect(res.status, await res.text()).toBe(200);
}

beforeAll(async () => {
  // No agent listens here: with a long hold nothing is dispatched while the tests run.
  const agentPort = await freePort();
  const sides = (alertname: string) => ({
    primary: { matchers: [`alertname="${alertname}"`, 'side="primary"'] },
    secondary: { matchers: [`alertname="${alertname}"`, 'side="secondary"'] },
  });
  const config = {
    agent: { url: `http://127.0.0.1:${agentPort}`, transport: "direct" },
    targets: {
      [TARGET]: { sides: sides("CliGatewayDown"), policy: { holdSeconds: 3600 } },
      [OTHER]: { sides: sides("CliDnsDown"), policy: { holdSeconds: 3600 } },
    },
  };
  worker = await startWorker({
    vars: {
      TURNOUT_CONFIG: JSON.stringify(config),
      ...credentialVars(CREDENTIALS, "vic", {
        alice: { token: ALICE, role: "operator" },
        bob: { token: BOB, role: "operator" },
      }),
    },
  });
}, 90_000);

afterAll(async () => {
  await worker?.stop();
});

describe("turnout status", () => {
  it("prints every target as a table row", async () => {
    const r = await turnout(["status"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^TARGET\s+ACTIVE\s+PHASE\s+PRIMARY\s+SECONDARY\s+ACTION\s+NOTE$/);
    expect(lines[1]).toMatch(/^-+\s+-+/);
    expect(lines.find((l) => l.startsWith(TARGET))).toMatch(
      new RegExp(`^${TARGET}\\s+primary\\s+steady\\s+up\\s+up\\s+-`),
    );
    expect(lines.find((l) => l.startsWith(OTHER))).toBeDefined();
  });

  it("--json prints the API's answer, which parses", async () => {
    const all = await turnout(["status", "--json"]);
    expect(all.code).toBe(0);
    const parsed = JSON.parse(all.stdout) as { targets: { name: string; phase: string }[] };
    expect(parsed.targets.map((t) => t.name).sort()).toEqual([OTHER, TARGET]);
    const one = await turnout(["--json", "status", OTHER]);
    expect(one.code).toBe(0);
    expect(JSON.parse(one.stdout)).toMatchObject({ name: OTHER, activeSide: "primary", phase: "steady" });
  });

  it("one target in detail: sides, firing signals and recent events as sentences", async () => {
    await alert("secondary", "cli0000000000001");
    const r = await turnout(["status", TARGET]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^${TARGET}: active side primary, phase steady`));
    expect(r.stdout).toContain("secondary down");
    expect(r.stdout).toMatch(/ {2}firing alertmanager am:\S+/);
    expect(r.stdout).toContain("signal received: alertmanager says secondary is firing");
  });
});

describe("turnout events", () => {
  it("--follow prints a new event within a second of its audit", async () => {
    const child: ChildProcess = spawn(BIN, ["events", OTHER, "--follow"], {
      cwd: root,
      env: cliEnv({ TURNOUT_TOKEN: TOKEN, TURNOUT_URL: url() }),
    });
    let out = "";
    let err = "";
    const seen: { at: number; line: string }[] = [];
    child.stdout?.on("data", (c: Buffer) => {
      out += c.toString();
      for (const line of c.toString().split("\n")) if (line) seen.push({ at: Date.now(), line });
    });
    child.stderr?.on("data", (c: Buffer) => {
      err += c.toString();
    });
    try {
      // The backlog first (config.changed when the object first ran), so the follow is under way.
      const until = async (pred: () => boolean, ms: number, what: string) => {
        const deadline = Date.now() + ms;
        while (!pred()) {
          if (Date.now() > deadline) throw new Error(`${what}; stdout:\n${out}\nstderr:\n${err}`);
          await new Promise((r) => setTimeout(r, 20));
        }
      };
      await new Promise((r) => setTimeout(r, 1500));
      expect(child.exitCode).toBeNull();
      // Three deliveries at different moments of the poll cycle: each must show within a second.
      for (const [i, pause] of [0, 350, 700].entries()) {
        await new Promise((r) => setTimeout(r, pause));
        const fingerprint = `cli00000000000f${i}`;
        const res = await postAlertmanager(
          url(),
          AM_TOKEN,
          alertmanagerBody({ labels: { alertname: "CliDnsDown", side: "primary" }, fingerprint, startsAt: Date.now() }),
        );
        expect(res.status).toBe(200);
        // The ingest answer comes after the events are written: this is when they were audited.
        const audited = Date.now();
        await until(() => seen.some((s) => s.line.includes(fingerprint)), 3000, `no line for ${fingerprint}`);
        const line = seen.find((s) => s.line.includes(fingerprint));
        expect(line?.line).toMatch(
          /^#\d+\s+\d\d:\d\d:\d\d\.\d{3} {2}signal received: alertmanager says primary is firing/,
        );
        expect((line?.at ?? Infinity) - audited, line?.line).toBeLessThan(1000);
      }
      await until(() => out.includes("hold started: primary down"), 3000, "no hold line");
      expect(out).toMatch(/^-- \d{4}-\d\d-\d\d \(UTC\)$/m);
    } finally {
      child.kill("SIGINT");
      await new Promise((r) => child.once("close", r));
    }
    expect(child.exitCode).toBe(0);
    expect(err).toBe("");
  });

  it("--json prints one event a line, each parsing, oldest first", async () => {
    const r = await turnout(["events", TARGET, "--json"]);
    expect(r.code).toBe(0);
    const events = r.stdout
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as { seq: number; type: string });
    expect(events.length).toBeGreaterThan(1);
    expect(events.map((e) => e.seq)).toEqual([...events.map((e) => e.seq)].sort((a, b) => a - b));
    expect(events.map((e) => e.type)).toContain("signal.firing");
    const later = await turnout(["events", TARGET, "--json", "--after", String(events[0]?.seq ?? 0)]);
    expect(later.stdout.trimEnd().split("\n")).toHaveLength(events.length - 1);
  });
});

describe("turnout commands", () => {
  it("an applied command says what it did; --json parses", async () => {
    const r = await turnout(["pause", OTHER, "--reason", "cli test"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toMatch(
      new RegExp(`^pause accepted on ${OTHER}: phase \\w+, active side primary \\(paused\\)$`),
    );
    const j = await turnout(["resume", OTHER, "--json"]);
    expect(j.code).toBe(0);
    expect(JSON.parse(j.stdout)).toMatchObject({ applied: true, target: { name: OTHER, paused: false } });
    const events = await turnout(["events", OTHER]);
    expect(events.stdout).toContain("command accepted: pause (by ");
    expect(events.stdout).toContain("reason: cli test");
  });

  it("a refused command exits 1 and prints the problem's detail", async () => {
    const r = await turnout(["resume", TARGET]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("turnout: refused (409 Conflict): resume: target is not paused");
    const unknown = await turnout(["status", "no-such-target"]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no target named "no-such-target"');
    const badToken = await turnout(["status"], { TURNOUT_TOKEN: "not-the-token" });
    expect(badToken.code).toBe(1);
    expect(badToken.stderr).toMatch(/refused \(401/);
  });

  it("--json with a refusal prints the problem as JSON too", async () => {
    const r = await turnout(["--json", "resume", TARGET]);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ status: 409, detail: "resume: target is not paused" });
  });

  it("bad usage exits 2 without calling the worker", async () => {
    for (const args of [
      [],
      ["frobnicate", TARGET],
      ["failover"],
      ["clear", TARGET],
      ["status", "--bogus"],
      ["drill", TARGET, "--mode", "sometimes"],
      ["events", TARGET, "--after", "minus-one"],
    ]) {
      const r = await turnout(args);
      expect(r.code, `turnout ${args.join(" ")}: ${r.stderr}`).toBe(2);
      expect(r.stderr, args.join(" ")).not.toBe("");
    }
    const noToken = await turnout(["status"], { TURNOUT_TOKEN: "" });
    expect(noToken.code).toBe(2);
    expect(noToken.stderr).toContain("TURNOUT_TOKEN");
    const help = await turnout(["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("confirm [options] <target> <request>");
  });

  it("an unreachable worker exits 1 naming the URL", async () => {
    const port = await freePort();
    const r = await turnout(["status"], { TURNOUT_URL: `http://127.0.0.1:${port}` });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`cannot reach the worker at http://127.0.0.1:${port}`);
  });
});

describe("break-glass and roles (design §3a) through the CLI", () => {
  it("--force prints the request id and how to confirm it; the requester cannot confirm, another operator can", async () => {
    // cli-gw's secondary fired above, so a failover to it needs force.
    const asked = await turnout(["failover", TARGET, "--force", "--reason", "primary DC flooded"], {
      TURNOUT_TOKEN: ALICE,
    });
    expect(asked.stderr).toBe("");
    expect(asked.code).toBe(0);
    const m =
      /^break-glass request ([0-9a-f]{32}): failover on cli-gw, requested by alice\. Nothing runs until a different operator confirms it before \S+:\n {2}turnout confirm cli-gw \1$/.exec(
        asked.stdout.trim(),
      );
    expect(m, asked.stdout).not.toBeNull();
    const id = m?.[1] ?? "";

    const self = await turnout(["confirm", TARGET, id], { TURNOUT_TOKEN: ALICE });
    expect(self.code).toBe(1);
    expect(self.stderr).toMatch(/^turnout: refused \(403 Forbidden\): /);

    const confirmed = await turnout(["confirm", TARGET, id], { TURNOUT_TOKEN: BOB });
    expect(confirmed.stderr).toBe("");
    expect(confirmed.code).toBe(0);
    expect(confirmed.stdout).toMatch(
      /^confirmed alice's forced failover on cli-gw: phase executing, active side primary, action cli-gw:\d+ failover primary → secondary \w+\n$/,
    );
    const state = await turnout(["status", TARGET, "--json"]);
    expect(JSON.parse(state.stdout)).toMatchObject({
      phase: "executing",
      action: { kind: "failover", to: "secondary" },
    });
    const events = await turnout(["events", TARGET]);
    expect(events.stdout).toContain("break-glass requested");
    expect(events.stdout).toContain("break-glass approved by bob");
  });

  it("a viewer token reads but its commands are refused with 403", async () => {
    const read = await turnout(["status"], { TURNOUT_TOKEN: VIEWER });
    expect(read.code).toBe(0);
    const cmd = await turnout(["pause", OTHER], { TURNOUT_TOKEN: VIEWER });
    expect(cmd.code).toBe(1);
    expect(cmd.stderr).toMatch(/^turnout: refused \(403 Forbidden\): /);
  });

  it("a confirmed request the target refuses exits 1 with the reason; --json gives the request", async () => {
    const asked = await turnout(["--json", "failback", OTHER, "--force"], { TURNOUT_TOKEN: ALICE });
    expect(asked.code).toBe(0);
    const { request } = JSON.parse(asked.stdout) as { request: { id: string } };
    const r = await turnout(["confirm", OTHER, request.id], { TURNOUT_TOKEN: BOB });
    // A failback to the primary, which is up, on a target already on it: the target refuses.
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("confirmed, but the target refused it");
  });
});
