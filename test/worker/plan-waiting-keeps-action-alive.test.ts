/**
 * A plan waiting for a person is never re-dispatched or failed by the worker (design §11.6, §5
 * rules 5 and 13): while an approval step waits the agent re-sends its `running` report every
 * 60 s, and the action's deadline counts from the latest report, so the action lives far past
 * `actionTimeoutSeconds` (120 s for plan-c). When the reports stop, rule 5 applies again.
 * The waiting step is announced once, with its step, not on every re-sent report.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { ActionRequest } from "../../shared/protocol.ts";
import { runningReport, waitingSteps } from "./support/plan-agent.ts";
import { useRecordingObject } from "./support/recording-object.ts";

const T0 = Date.parse("2026-11-22T10:00:00Z");
const TIMEOUT_MS = 120_000;
const rec = useRecordingObject({ start: T0 });

async function failover(target: string): Promise<ActionRequest> {
  const r = await env.TARGETS.getByName(target).command(target, { command: "failover", actor: "operator" });
  expect(r.applied).toBe(true);
  await env.TARGETS.getByName(target).settle();
  const req = rec.dispatched.at(-1);
  if (!req) throw new Error("nothing dispatched");
  return req;
}

async function types(target: string): Promise<string[]> {
  return (await env.TARGETS.getByName(target).events(0, 1000)).events.map((e) => e.type);
}

describe("a waiting plan keeps its action alive", () => {
  it("re-sent waiting reports every 60 s carry the action 15 minutes past actionTimeoutSeconds: no re-dispatch, no failure", async () => {
    const stub = env.TARGETS.getByName("plan-c");
    const req = await failover("plan-c");
    const deadline = T0 + 900_000;
    for (let t = T0 + 1000; t <= T0 + 901_000; t += 60_000) {
      rec.clock = t;
      expect((await stub.report("plan-c", runningReport(req, t, waitingSteps(t, deadline)))).accepted).toBe(true);
      // Whatever alarm is armed fires halfway to the next report, as workerd would fire it.
      await rec.fireAlarm("plan-c", t + 30_000);
    }
    const view = await stub.view("plan-c");
    expect(view.phase).toBe("executing");
    expect(view.action).toMatchObject({ id: req.id, status: "running" });
    expect(view.action?.steps.find((s) => s.name === "approve-shift")).toMatchObject({
      status: "waiting",
      approval: { message: "Shift the HTTPRoute weights to <secondary>?", deadline: new Date(deadline).toISOString() },
    });
    expect(view.action?.steps.filter((s) => s.group === "prepare").map((s) => s.name)).toEqual([
      "scale-standby",
      "warm-cache",
    ]);
    expect(rec.dispatched.map((r) => r.id)).toEqual([req.id]);
    const seen = await types("plan-c");
    expect(seen).not.toContain("action.redispatched");
    expect(seen).not.toContain("action.failed");
    // Announced once, when the step started to wait; the re-sends are progress only.
    expect(seen.filter((t) => t === "approval.step-waiting")).toHaveLength(1);
    const asks = rec.notes.filter((n) => n.kind === "approval");
    expect(asks).toHaveLength(1);
    expect(asks[0]).toMatchObject({ step: "approve-shift" });
    expect(asks[0]?.text).toContain("step approve-shift of plan-c:1 waits for approval before");
  });

  it("when the waiting reports stop, the action is re-dispatched actionTimeoutSeconds after the last one (rule 5 still holds)", async () => {
    const stub = env.TARGETS.getByName("plan-d");
    const req = await failover("plan-d");
    const last = T0 + 61_000;
    for (const t of [T0 + 1000, last]) {
      rec.clock = t;
      await stub.report("plan-d", runningReport(req, t, waitingSteps(t, T0 + 900_000)));
    }
    await rec.fireAlarm("plan-d", last + TIMEOUT_MS - 1000);
    expect(rec.dispatched).toHaveLength(1);
    await rec.fireAlarm("plan-d", last + TIMEOUT_MS);
    expect(rec.dispatched.map((r) => r.id)).toEqual([req.id, req.id]);
    expect(await types("plan-d")).toContain("action.redispatched");
  });
});
