import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InMemoryActionStore } from "../../agent/action-store.ts";
import { SIGNATURE_HEADER, sign } from "../../shared/signature.ts";
import { type ReportReceiver, startReportReceiver } from "../support/report-receiver.ts";
import {
  actionRequest,
  countingExecutor,
  startTestAgent,
  stubLeadership,
  type TestAgent,
} from "../support/test-executors.ts";

const SECRET = "leader-secret";
let receiver: ReportReceiver;
const agents: TestAgent[] = [];

beforeAll(async () => {
  receiver = await startReportReceiver(SECRET);
});
afterAll(async () => {
  for (const a of agents) await a.close();
  await receiver.close();
});

async function post(url: string, body: unknown) {
  const raw = JSON.stringify(body);
  return fetch(`${url}/v1/actions`, {
    method: "POST",
    headers: { "content-type": "application/json", [SIGNATURE_HEADER]: await sign(SECRET, raw, Date.now() / 1000) },
    body: raw,
  });
}

describe("leadership", () => {
  it("a follower answers 503 with Retry-After and executes nothing; the leader executes", async () => {
    // Two replicas over one durable store, as two pods over the same ConfigMaps.
    const store = new InMemoryActionStore();
    const followerExec = countingExecutor({ steps: ["one"] });
    const leaderExec = countingExecutor({ steps: ["one"] });
    const follower = await startTestAgent({
      targets: ["app"],
      reportUrl: receiver.url,
      secret: SECRET,
      executor: followerExec.executor,
      store,
      leadership: stubLeadership(false, "replica-b"),
    });
    const leader = await startTestAgent({
      targets: ["app"],
      reportUrl: receiver.url,
      secret: SECRET,
      executor: leaderExec.executor,
      store,
      leadership: stubLeadership(true),
    });
    agents.push(follower, leader);

    const refused = await post(follower.url, actionRequest("app", 1));
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBe("15");
    expect(refused.headers.get("content-type")).toBe("application/problem+json");
    expect(await refused.json()).toMatchObject({ holder: "replica-b" });
    expect((await fetch(`${follower.url}/readyz`)).status).toBe(200); // standing by is ready

    expect((await post(leader.url, actionRequest("app", 1))).status).toBe(202);
    await leader.runner.idle();
    expect(followerExec.count()).toBe(0);
    expect(leaderExec.count()).toBe(1);
    expect((await follower.metrics.render()).body).toContain("turnout_agent_lease_leader 0");
    expect((await leader.metrics.render()).body).toContain("turnout_agent_lease_leader 1");
  });

  it("when the leader loses the Lease mid-action, the new leader finishes it without repeating completed steps", async () => {
    const store = new InMemoryActionStore();
    const aLease = stubLeadership(true);
    const bLease = stubLeadership(false, "replica-a");
    const aExec = countingExecutor({ steps: ["one", "two", "three"], gated: ["two"] });
    const bExec = countingExecutor({ steps: ["one", "two", "three"] });
    const a = await startTestAgent({
      targets: ["app"],
      reportUrl: receiver.url,
      secret: SECRET,
      executor: aExec.executor,
      store,
      leadership: aLease,
    });
    const b = await startTestAgent({
      targets: ["app"],
      reportUrl: receiver.url,
      secret: SECRET,
      executor: bExec.executor,
      store,
      leadership: bLease,
    });
    agents.push(a, b);

    expect((await post(a.url, actionRequest("app", 5))).status).toBe(202);
    await aExec.started("two");
    aLease.set(false); // stops renewing: its running step is aborted
    await a.runner.idle();
    expect((await store.get("app", "app:5"))?.report.status).toBe("running");
    bLease.set(true); // takes the Lease over: resumes from the shared store
    const final = await receiver.waitFor((r) => r.actionId === "app:5" && r.status === "succeeded");
    await b.runner.idle();
    expect(bExec.calls.map((c) => c.step)).toEqual(["two", "three"]);
    expect(aExec.calls.map((c) => c.step)).toEqual(["one", "two"]);
    expect(final.steps.map((s) => s.status)).toEqual(["succeeded", "succeeded", "succeeded"]);
    // The old leader now refuses new work.
    expect((await post(a.url, actionRequest("app", 6))).status).toBe(503);
  });
});
