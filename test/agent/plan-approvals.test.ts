/**
 * Approval steps (design §11.2, §11.6): the step reports `waiting` with `{message, deadline}`, a
 * running report is re-sent every 60 s while it waits, the signed `POST
 * /v1/actions/:id/approvals` resumes it once (a second approval is 409), and one not approved in
 * time fails the action `approval-timeout`. The clock moves only when the test moves it.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { alwaysLeader } from "../../agent/leadership.ts";
import { silentLogger } from "../../agent/log.ts";
import { createAgentApp } from "../../agent/server.ts";
import { SIGNATURE_HEADER, sign } from "../../shared/signature.ts";
import {
  manualClock,
  type PlanCluster,
  planAction,
  planAgent,
  planConfig,
  startPlanCluster,
} from "../support/plan-sandbox.ts";

const SECRET = "approval-secret-of-at-least-32-chars!";
const steps = [
  { name: "go-ahead", approval: { message: "Shift shop traffic to dc-2?" }, timeoutSeconds: 600 },
  {
    name: "mark",
    kube: {
      apiVersion: "v1",
      kind: "ConfigMap",
      namespace: "default",
      name: "app",
      patch: { primary: { data: { side: "primary" } }, secondary: { data: { side: "secondary" } } },
    },
  },
];

let cluster: PlanCluster;
beforeEach(async () => {
  cluster = await startPlanCluster();
  cluster.api.store.create(
    { resource: "configmaps" },
    { metadata: { name: "app", namespace: "default" }, data: { side: "primary" } },
  );
});
afterEach(async () => {
  await cluster.close();
});

function setup() {
  const clock = manualClock();
  const agent = planAgent({ config: planConfig(steps), kubeConfig: cluster.api.kubeConfig(), clock });
  const app = createAgentApp({
    config: agent.config,
    mode: "sandbox",
    version: "test",
    readiness: async () => ({ ready: true, detail: "" }),
    actions: { runner: agent.runner, leadership: alwaysLeader, secrets: [SECRET], log: silentLogger, now: clock.now },
  });
  const approve = async (id: string, body: unknown) => {
    const raw = JSON.stringify(body);
    return app.request(`/v1/actions/${id}/approvals`, {
      method: "POST",
      headers: { "content-type": "application/json", [SIGNATURE_HEADER]: await sign(SECRET, raw, clock.now() / 1000) },
      body: raw,
    });
  };
  return { clock, agent, approve };
}

const side = (c: PlanCluster) =>
  (c.api.store.read({ resource: "configmaps" }, "default", "app").data as { side: string }).side;

describe("approval steps", () => {
  it("wait as `waiting` with message and deadline, resume once on approval, and refuse a second approval with 409", async () => {
    const { agent, approve } = setup();
    await agent.runner.submit(planAction({ id: "shop:1" }));
    const waiting = await agent.waitForReport((r) => r.steps[0]?.status === "waiting");
    expect(waiting.status).toBe("running");
    expect(waiting.steps[0]?.approval).toEqual({
      message: "Shift shop traffic to dc-2?",
      deadline: "2026-11-22T10:10:00.000Z",
    });
    expect(side(cluster)).toBe("primary");

    const first = await approve("shop:1", { actionId: "shop:1", step: "go-ahead", by: "alice@example.com" });
    expect(first.status).toBe(200);
    expect(await first.json()).toMatchObject({ status: "approved", by: "alice@example.com" });
    const done = await agent.waitForReport((r) => r.status !== "running");
    expect(done.status).toBe("succeeded");
    expect(done.steps[0]).toMatchObject({
      status: "succeeded",
      detail: expect.stringContaining("approved by alice@example.com"),
    });
    expect(done.steps[0]?.approval).toBeUndefined();
    expect(side(cluster)).toBe("secondary");

    const second = await approve("shop:1", { actionId: "shop:1", step: "go-ahead", by: "bob@example.com" });
    expect(second.status).toBe(409);
    expect(second.headers.get("content-type")).toBe("application/problem+json");
    expect(await second.json()).toMatchObject({
      type: "urn:turnout:problem:already-approved",
      by: "alice@example.com",
    });
    expect(cluster.writes().filter((w) => w.method === "PATCH").length).toBe(1);
  });

  it("re-send a running report every 60 s while waiting, then fail approval-timeout at timeoutSeconds", async () => {
    const { agent, clock } = setup();
    await agent.runner.submit(planAction({ id: "shop:1" }));
    await agent.waitForReport((r) => r.steps[0]?.status === "waiting");
    const before = agent.reports.length;
    for (let minute = 1; minute <= 9; minute++) {
      await clock.advance(60_000);
      await agent.waitForReport((r) => Date.parse(r.at) === Date.parse("2026-11-22T10:00:00.000Z") + minute * 60_000);
    }
    const alive = agent.reports.slice(before);
    expect(alive.every((r) => r.status === "running" && r.steps[0]?.status === "waiting")).toBe(true);
    expect(new Set(alive.map((r) => r.at)).size).toBe(9);
    await clock.advance(60_000);
    const failed = await agent.waitForReport((r) => r.status === "failed");
    expect(failed.error?.code).toBe("approval-timeout");
    expect(failed.steps.map((s) => s.status)).toEqual(["failed", "pending"]);
    expect(side(cluster)).toBe("primary");
  });

  it("answer 404 for an unknown action, 400 when the path and body disagree, 409 for a step not waiting", async () => {
    const { agent, approve } = setup();
    await agent.runner.submit(planAction({ id: "shop:1" }));
    await agent.waitForReport((r) => r.steps[0]?.status === "waiting");
    expect((await approve("shop:9", { actionId: "shop:9", step: "go-ahead", by: "a" })).status).toBe(404);
    const mismatch = await approve("shop:1", { actionId: "shop:2", step: "go-ahead", by: "a" });
    expect(mismatch.status).toBe(400);
    expect(await mismatch.json()).toMatchObject({ errors: [{ path: "actionId" }] });
    const notWaiting = await approve("shop:1", { actionId: "shop:1", step: "mark", by: "a" });
    expect(notWaiting.status).toBe(409);
    expect(await notWaiting.json()).toMatchObject({ type: "urn:turnout:problem:not-waiting", status: "pending" });
    expect((await approve("shop:1", { actionId: "shop:1", step: "nope", by: "a" })).status).toBe(404);
  });

  it("skip the approval in a drill", async () => {
    const { agent } = setup();
    await agent.runner.submit(planAction({ id: "shop:1", kind: "drill", dryRun: true }));
    const done = await agent.waitForReport((r) => r.status !== "running");
    expect(done.status).toBe("succeeded");
    expect(done.steps[0]).toMatchObject({ status: "skipped", detail: expect.stringContaining("dry run") });
    expect(side(cluster)).toBe("primary");
  });
});
