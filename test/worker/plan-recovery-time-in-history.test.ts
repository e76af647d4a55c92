/**
 * Each execution of a plan goes into the incident history with its own recovery time, from
 * dispatch to the final report (design §5b, issue 26), read from the real object's audit log:
 * a failed execution and its retry are two rows of one incident, each timed on the object's clock.
 */
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { ActionReport, ActionRequest } from "../../shared/protocol.ts";
import { incidentsOf } from "../../worker/target/incidents.ts";
import { fakeApprovalsAgent, runningReport, waitingSteps } from "./support/plan-agent.ts";
import { useRecordingObject } from "./support/recording-object.ts";

const T0 = Date.parse("2026-11-22T10:00:00Z");
const rec = useRecordingObject({ start: T0 });
afterEach(() => {
  vi.restoreAllMocks();
});

function final(req: ActionRequest, status: "succeeded" | "failed", atMs: number): ActionReport {
  return {
    actionId: req.id,
    target: req.target,
    status,
    ...(status === "succeeded"
      ? { activeSide: req.to }
      : { error: { code: "approval-timeout", message: "not approved in time" } }),
    dryRun: false,
    steps: [{ name: "approve-shift", status: status === "succeeded" ? "succeeded" : "failed" }],
    at: new Date(atMs).toISOString(),
  };
}

describe("plan executions in the incident history", () => {
  it("records each execution's dispatch-to-final-report time: a failed one, then its retry", async () => {
    fakeApprovalsAgent();
    const stub = env.TARGETS.getByName("plan-a");
    expect((await stub.command("plan-a", { command: "failover", actor: "operator" })).applied).toBe(true);
    await stub.settle();
    const first = rec.dispatched.at(-1) as ActionRequest;
    rec.clock = T0 + 2000;
    await stub.report("plan-a", runningReport(first, rec.clock, waitingSteps(rec.clock, T0 + 62_000)));
    rec.clock = T0 + 62_000;
    await stub.report("plan-a", final(first, "failed", rec.clock));

    rec.clock = T0 + 100_000;
    expect((await stub.command("plan-a", { command: "retry", actor: "operator" })).applied).toBe(true);
    await stub.settle();
    const retry = rec.dispatched.at(-1) as ActionRequest;
    rec.clock = T0 + 103_000;
    await stub.report("plan-a", runningReport(retry, rec.clock, waitingSteps(rec.clock, T0 + 1_000_000)));
    expect((await stub.approveStep("plan-a", { step: "approve-shift", actor: "operator" })).applied).toBe(true);
    rec.clock = T0 + 195_000;
    await stub.report("plan-a", final(retry, "succeeded", rec.clock));

    const { events } = await stub.events(0, 1000);
    const [incident] = incidentsOf(events);
    expect(incident?.executions).toEqual([
      { id: first.id, kind: "failover", outcome: "failed", recoveryMs: 62_000 },
      { id: retry.id, kind: "failover", outcome: "succeeded", recoveryMs: 95_000 },
    ]);
    expect(incident?.outcome).toBe("switched to secondary");
  });

  it("an execution still running has no recovery time yet", async () => {
    const stub = env.TARGETS.getByName("plan-b");
    expect((await stub.command("plan-b", { command: "failover", actor: "operator" })).applied).toBe(true);
    await stub.settle();
    const { events } = await stub.events(0, 1000);
    expect(incidentsOf(events)[0]?.executions).toEqual([
      { id: "plan-b:1", kind: "failover", outcome: "running", recoveryMs: null },
    ]);
  });
});
