/**
 * A plan through the `turnout` CLI (design §10, §11.2): the real bin against the real worker in
 * workerd and a fake agent over real HTTP. `turnout status <target>` shows the plan's steps with
 * its parallel group and the step waiting for approval (message, deadline, the command to run);
 * `turnout approve <target> --step <name>` approves it (the agent gets the signed approval once),
 * a second approval exits 1 with the 409's detail, and bad usage exits 2.
 */
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ActionRequest } from "../../shared/protocol.ts";
import { type FakePlanAgent, report, startFakePlanAgent } from "../support/fake-plan-agent.ts";
import { credentialVars, workerCredentials } from "../support/worker-credentials.ts";
import { startWorker, type WorkerProcess } from "../support/worker-process.ts";

const root = join(import.meta.dirname, "../..");
const BIN = join(root, "bin/turnout.ts");
const CREDENTIALS = workerCredentials("cli-plan");
const { operator: TOKEN, agentSecret: AGENT_SECRET } = CREDENTIALS;
const TARGET = "cli-plan";

let worker: WorkerProcess | undefined;
let agent: FakePlanAgent | undefined;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the bin to completion; PATH starts with this Node 24, so its shebang finds it. */
function turnout(args: string[]): Promise<Run> {
  const { TURNOUT_URL: _u, TURNOUT_TOKEN: _t, ...rest } = process.env;
  const env = {
    ...rest,
    PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ""}`,
    TURNOUT_TOKEN: TOKEN,
    TURNOUT_URL: worker?.url ?? "",
  };
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, args, { cwd: root, env });
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

const at = (msAgo: number) => new Date(Date.now() - msAgo).toISOString();

beforeAll(async () => {
  agent = await startFakePlanAgent(AGENT_SECRET);
  const config = {
    agent: { url: agent.url, transport: "direct" },
    targets: {
      [TARGET]: {
        sides: {
          primary: { matchers: ['alertname="CliPlan"', 'side="primary"'] },
          secondary: { matchers: ['alertname="CliPlan"', 'side="secondary"'] },
        },
        policy: {},
      },
    },
  };
  worker = await startWorker({
    vars: { TURNOUT_CONFIG: JSON.stringify(config), ...credentialVars(CREDENTIALS, "night") },
  });
}, 90_000);

afterAll(async () => {
  await worker?.stop();
  await agent?.stop();
}, 30_000);

describe("a plan through the turnout CLI", () => {
  it("status shows the group and the waiting step; approve --step approves it once; twice is refused", async () => {
    const w = worker as WorkerProcess;
    const a = agent as FakePlanAgent;
    const dispatched = a.next("action");
    const failover = await turnout(["failover", TARGET, "--reason", "region lost"]);
    expect(failover.code).toBe(0);
    const request = (await dispatched) as ActionRequest;
    const deadline = new Date(Date.now() + 600_000).toISOString();
    await report(AGENT_SECRET, w.url, request, "running", [
      { name: "scale-standby", status: "succeeded", group: "prepare", startedAt: at(3000), finishedAt: at(2000) },
      { name: "warm-cache", status: "succeeded", group: "prepare", startedAt: at(3000), finishedAt: at(1500) },
      {
        name: "approve-shift",
        status: "waiting",
        startedAt: at(1000),
        approval: { message: "Shift the HTTPRoute weights to secondary?", deadline },
      },
      { name: "shift-weights", status: "pending" },
    ]);

    const status = await turnout(["status", TARGET]);
    expect(status.code).toBe(0);
    const lines = status.stdout.split("\n");
    expect(lines[0]).toBe(`${TARGET}: active side primary, phase executing (step approve-shift waits for approval)`);
    const from = lines.findIndex((l) => l.startsWith(`action ${request.id}:`));
    expect(lines.slice(from, from + 10)).toEqual([
      `action ${request.id}: failover primary → secondary, running`,
      "  parallel group prepare:",
      "    succeeded scale-standby in 1000 ms",
      "    succeeded warm-cache in 1500 ms",
      "  waiting   approve-shift",
      "    waits for approval: Shift the HTTPRoute weights to secondary?",
      expect.stringMatching(
        new RegExp(`^    approve before ${deadline} \\(in (9|10) min( \\d+ s)?\\), else the action fails:$`),
      ),
      `      turnout approve ${TARGET} --step approve-shift`,
      "  pending   shift-weights",
      "",
    ]);
    const table = await turnout(["status"]);
    expect(table.stdout).toContain(`${request.id} failover running waiting for approval at approve-shift`);

    const approved = a.next("approval");
    const approve = await turnout(["approve", TARGET, "--step", "approve-shift", "--reason", "checked the dashboards"]);
    expect(approve.stderr).toBe("");
    expect(approve.code).toBe(0);
    expect(approve.stdout.trim()).toBe(
      `step approve-shift approved (forwarded to the agent) on ${TARGET}: phase executing, active side primary, action ${request.id} failover primary → secondary running`,
    );
    expect(await approved).toEqual({ actionId: request.id, step: "approve-shift", by: "operator" });

    const again = await turnout(["approve", TARGET, "--step", "approve-shift"]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("refused (409 Conflict)");
    expect(again.stderr).toContain(`approve: step "approve-shift" of ${request.id} was already approved by operator`);
    expect(a.approvals).toHaveLength(1);

    const after = await turnout(["status", TARGET]);
    expect(after.stdout).toContain("    approved by operator at ");
    expect(after.stdout).not.toContain("--step approve-shift");
  }, 60_000);

  it("--json prints a refusal as the problem JSON; bad usage exits 2", async () => {
    const unknown = await turnout(["--json", "approve", TARGET, "--step", "no-such-step"]);
    expect(unknown.code).toBe(1);
    expect(JSON.parse(unknown.stdout)).toMatchObject({ status: 409, detail: expect.stringContaining("no-such-step") });
    const missing = await turnout(["approve", TARGET, "--step"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("option '--step <name>' argument missing");
    const forced = await turnout(["approve", TARGET, "--step", "x", "--force"]);
    expect(forced.code).toBe(2);
    expect(forced.stderr).toContain("a plan step's approval is never forced");
  }, 30_000);
});
