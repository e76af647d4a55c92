import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InMemoryActionStore } from "../../agent/action-store.ts";
import { silentLogger } from "../../agent/log.ts";
import { createAgentMetrics } from "../../agent/metrics.ts";
import { createReportSender } from "../../agent/report-sender.ts";
import { ActionRunner, type ExecutorRegistry } from "../../agent/runner.ts";
import { type ActionRequest, ActionRequestSchema } from "../../shared/protocol.ts";
import { type ReportReceiver, startReportReceiver } from "../support/report-receiver.ts";
import { actionRequest, type CountingOptions, countingExecutor, testAgentConfig } from "../support/test-executors.ts";

const SECRET = "runner-test-secret";
let receiver: ReportReceiver;

beforeAll(async () => {
  receiver = await startReportReceiver(SECRET);
});
afterAll(async () => {
  await receiver.close();
});

function setup(options: CountingOptions, store = new InMemoryActionStore()) {
  const counting = countingExecutor(options);
  const metrics = createAgentMetrics({ processMetrics: false });
  let clock = Date.parse("2026-11-22T10:00:00.000Z");
  const now = () => {
    clock += 1000; // every reading advances 1 s, so timestamps are distinct and ordered
    return clock;
  };
  const reports = createReportSender({
    reportUrl: receiver.url,
    secret: SECRET,
    log: silentLogger,
    initialDelayMs: 1,
    maxDelayMs: 5,
    onFailure: () => metrics.reportDeliveryFailed(),
  });
  const executors: ExecutorRegistry = new Map([["dns-flip", counting.executor]]);
  const runner = new ActionRunner({
    config: testAgentConfig(["app", "other"], receiver.url),
    executors,
    store,
    reports,
    log: silentLogger,
    metrics,
    now,
  });
  return { runner, counting, store, metrics };
}

const req = (target: string, epoch: number, o: Record<string, unknown> = {}): ActionRequest =>
  ActionRequestSchema.parse(actionRequest(target, epoch, o));

describe("runner", () => {
  it("runs the steps in order, persists and reports each change, and ends with activeSide = to", async () => {
    const { runner, counting, store } = setup({ steps: ["one", "two", "three"] });
    expect(await runner.submit(req("app", 1))).toEqual({ outcome: "accepted", id: "app:1" });
    await runner.idle();
    expect(counting.calls.map((c) => c.step)).toEqual(["one", "two", "three"]);
    const record = await store.get("app", "app:1");
    expect(record?.completedSteps).toEqual(["one", "two", "three"]);
    expect(record?.reportDelivered).toBe(true);
    expect(record?.report).toMatchObject({ status: "succeeded", activeSide: "secondary", dryRun: false });
    for (const step of record?.report.steps ?? []) {
      expect(step.status).toBe("succeeded");
      expect(Date.parse(step.finishedAt ?? "")).toBeGreaterThan(Date.parse(step.startedAt ?? ""));
      expect(step.detail).toBe(`${step.name} done`);
    }
    const mine = receiver.reports.filter((r) => r.actionId === "app:1");
    expect(mine.at(-1)?.status).toBe("succeeded");
    // Every acknowledged report is a snapshot in order: statuses never go backwards.
    expect(mine.every((r, i) => i === 0 || Date.parse(r.at) >= Date.parse(mine[i - 1]?.at ?? ""))).toBe(true);
    expect(receiver.rejected).toEqual([]);
  });

  it("keeps activeSide = from for a dry run", async () => {
    const { runner, counting } = setup({ steps: ["one"] });
    await runner.submit(req("app", 2, { kind: "drill", dryRun: true }));
    await runner.idle();
    expect(counting.calls).toEqual([{ action: "app:2", step: "one", dryRun: true }]);
    expect(await runner.report("app:2")).toMatchObject({ status: "succeeded", activeSide: "primary", dryRun: true });
  });

  it("counts a running action in turnout_agent_actions_in_progress, and not once it ends", async () => {
    const { runner, counting, metrics } = setup({ steps: ["one"], gated: ["one"] });
    const gauge = async () => /turnout_agent_actions_in_progress (\d+)/.exec((await metrics.render()).body)?.[1];
    await runner.submit(req("app", 1));
    await counting.started("one");
    expect(await gauge()).toBe("1");
    counting.open("one");
    await runner.idle();
    expect(await gauge()).toBe("0");
  });

  it("turns a StepError into a failed report, leaves later steps pending, and a retry resumes from the failed step", async () => {
    const { runner, counting, metrics } = setup({
      steps: ["save", "delete", "create"],
      fail: { step: "delete", code: "route-stuck", message: "route still present after 60 s", times: 1 },
    });
    await runner.submit(req("app", 3));
    await runner.idle();
    const failed = await runner.report("app:3");
    expect(failed?.status).toBe("failed");
    expect(failed?.activeSide).toBeUndefined();
    expect(failed?.error).toEqual({
      code: "route-stuck",
      message: 'step "delete" failed: route still present after 60 s; a retry resumes from step "delete"',
    });
    expect(failed?.steps.map((s) => s.status)).toEqual(["succeeded", "failed", "pending"]);
    expect(receiver.reports.filter((r) => r.actionId === "app:3").at(-1)?.status).toBe("failed");

    await runner.submit(req("app", 4));
    await runner.idle();
    const retried = await runner.report("app:4");
    expect(retried?.status).toBe("succeeded");
    expect(retried?.steps.map((s) => s.status)).toEqual(["succeeded", "succeeded", "succeeded"]);
    expect(retried?.steps[0]?.detail).toBe("done by app:3: save done");
    expect(counting.count("save")).toBe(1);
    expect(counting.count("delete")).toBe(2);
    const text = (await metrics.render()).body;
    expect(text).toMatch(/turnout_agent_actions_total\{kind="failover",executor="dns-flip",result="failed"\} 1/);
    expect(text).toMatch(/turnout_agent_actions_total\{kind="failover",executor="dns-flip",result="succeeded"\} 1/);
    expect(text).toMatch(
      /turnout_agent_step_duration_seconds_count\{executor="dns-flip",step="delete",result="failed"\} 1/,
    );
  });

  it("re-sends a report lost in transit (503, then a dropped connection) until it is acknowledged", async () => {
    const { runner, store, metrics } = setup({ steps: ["only"] });
    const before = receiver.attempts;
    receiver.faults.push("503", "drop");
    await runner.submit(req("other", 1));
    await runner.idle();
    expect(receiver.attempts - before).toBeGreaterThanOrEqual(3);
    expect(receiver.reports.filter((r) => r.actionId === "other:1").at(-1)?.status).toBe("succeeded");
    expect((await store.get("other", "other:1"))?.reportDelivered).toBe(true);
    expect((await metrics.render()).body).toMatch(/turnout_agent_report_delivery_failures_total 2/);
  });

  it("answers the same id with the current report and a different id mid-action with a conflict", async () => {
    const { runner, counting } = setup({ steps: ["a", "b"], gated: ["a"] });
    expect((await runner.submit(req("app", 10))).outcome).toBe("accepted");
    await counting.started("a");
    const again = await runner.submit(req("app", 10));
    expect(again.outcome).toBe("duplicate");
    expect(again.outcome === "duplicate" && again.report.status).toBe("running");
    expect(await runner.submit(req("app", 11))).toEqual({ outcome: "conflict", runningId: "app:10" });
    expect(await runner.submit(req("nope", 1))).toEqual({ outcome: "unknown-target" });
    counting.open("a");
    await runner.idle();
    expect(counting.count()).toBe(2);
    expect((await runner.submit(req("app", 10))).outcome).toBe("duplicate");
    expect(counting.count()).toBe(2);
  });

  it("a real action preempts a running dry run: the drill fails with code preempted and the real one runs at once", async () => {
    const { runner, counting, store } = setup({ steps: ["a", "b"], gated: ["a"] });
    expect((await runner.submit(req("app", 40, { kind: "drill", dryRun: true }))).outcome).toBe("accepted");
    await counting.started("a");
    // Another dry run, or a real action over a real one, is still a conflict.
    expect(await runner.submit(req("app", 41, { kind: "drill", dryRun: true }))).toEqual({
      outcome: "conflict",
      runningId: "app:40",
    });
    expect(await runner.submit(req("app", 42))).toEqual({ outcome: "accepted", id: "app:42" });
    expect(await runner.submit(req("app", 43))).toEqual({ outcome: "conflict", runningId: "app:42" });
    counting.open("a");
    await runner.idle();
    const drill = (await store.get("app", "app:40"))?.report;
    expect(drill).toMatchObject({ status: "failed", activeSide: "primary", error: { code: "preempted" } });
    expect(drill?.error?.message).toMatch(/preempted by the real action app:42 at step "a"/);
    expect(drill?.steps).toMatchObject([
      { name: "a", status: "failed" },
      { name: "b", status: "pending" },
    ]);
    expect((await store.get("app", "app:42"))?.report.status).toBe("succeeded");
    expect(counting.calls.filter((c) => c.action === "app:40").map((c) => c.step)).toEqual(["a"]);
    const sent = receiver.reports.filter((r) => r.actionId === "app:40");
    expect(sent.at(-1)).toMatchObject({ status: "failed", error: { code: "preempted" } });
  });

  it("resumes an unfinished action from the store after the last completed step", async () => {
    const store = new InMemoryActionStore();
    const first = setup({ steps: ["a", "b", "c"], gated: ["b"] }, store);
    await first.runner.submit(req("app", 20));
    await first.counting.started("b");
    await first.runner.abortAll("simulated shutdown");
    expect((await store.get("app", "app:20"))?.completedSteps).toEqual(["a"]);
    expect((await store.unfinished()).map((r) => r.request.id)).toContain("app:20");

    const second = setup({ steps: ["a", "b", "c"] }, store);
    expect(await second.runner.resumeUnfinished()).toContain("app:20");
    await second.runner.idle();
    expect(second.counting.calls.map((c) => c.step)).toEqual(["b", "c"]);
    expect((await store.get("app", "app:20"))?.report.status).toBe("succeeded");
  });
});

describe("runner shutting down", () => {
  it("leadership regained during a graceful drain resumes nothing: the action waits for the next leader", async () => {
    const { runner, counting, store } = setup({ steps: ["a", "b", "c"], gated: ["a"] });
    await runner.submit(req("app", 50));
    await counting.started("a");
    // SIGTERM: the running step may finish, nothing new starts, the rest stays in the store.
    const draining = runner.drain(60_000);
    // The Lease is renewed once more before the process exits (a regained lease, or a flap).
    const resumed = runner.resumeUnfinished();
    counting.open("a");
    await draining;
    expect(await resumed).toEqual([]);
    expect(runner.isAccepting()).toBe(false);
    expect(await runner.submit(req("other", 51))).toEqual({ outcome: "stopping" });
    await runner.idle();
    expect(counting.calls.map((c) => c.step)).toEqual(["a"]);
    const record = await store.get("app", "app:50");
    expect(record?.report.status).toBe("running");
    expect(record?.completedSteps).toEqual(["a"]);
  });
});

describe("runner after a restart", () => {
  it("re-sends the final report of a finished action the worker never acknowledged, running nothing", async () => {
    const store = new InMemoryActionStore();
    const request = req("app", 30);
    await store.put({
      request,
      report: {
        actionId: "app:30",
        target: "app",
        status: "succeeded",
        activeSide: "secondary",
        dryRun: false,
        steps: [{ name: "only", status: "succeeded" }],
        at: "2026-11-22T10:00:05.000Z",
      },
      completedSteps: ["only"],
      reportDelivered: false,
      updatedAt: "2026-11-22T10:00:05.000Z",
    });
    receiver.faults.push("drop");
    const { runner, counting } = setup({ steps: ["only"] }, store);
    expect(await runner.resumeUnfinished()).toEqual(["app:30"]);
    await runner.idle();
    expect(counting.count()).toBe(0);
    expect(receiver.reports.filter((r) => r.actionId === "app:30").map((r) => r.status)).toEqual(["succeeded"]);
    expect((await store.get("app", "app:30"))?.reportDelivered).toBe(true);
    expect(await store.unfinished()).toEqual([]);
  });
});
