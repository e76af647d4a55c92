import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SIGNATURE_HEADER, sign } from "../../shared/signature.ts";
import { type ReportReceiver, startReportReceiver } from "../support/report-receiver.ts";
import { signedGet } from "../support/signed-get.ts";
import { actionRequest, countingExecutor, startTestAgent, type TestAgent } from "../support/test-executors.ts";

const SECRET = "actions-secret";
let receiver: ReportReceiver;
let agent: TestAgent;
const counting = countingExecutor({ steps: ["hold", "finish"], gated: ["hold"] });

beforeAll(async () => {
  receiver = await startReportReceiver(SECRET);
  agent = await startTestAgent({
    targets: ["app"],
    reportUrl: receiver.url,
    secret: SECRET,
    executor: counting.executor,
  });
});
afterAll(async () => {
  await agent.close();
  await receiver.close();
});

async function post(body: unknown) {
  const raw = typeof body === "string" ? body : JSON.stringify(body);
  const res = await fetch(`${agent.url}/v1/actions`, {
    method: "POST",
    headers: { "content-type": "application/json", [SIGNATURE_HEADER]: await sign(SECRET, raw, Date.now() / 1000) },
    body: raw,
  });
  return {
    status: res.status,
    type: res.headers.get("content-type"),
    json: (await res.json()) as Record<string, unknown>,
  };
}

describe("POST /v1/actions", () => {
  it("answers 400 naming every failing field of a bad body", async () => {
    const res = await post({ id: "app", target: "app", kind: "explode", from: "left", to: "secondary" });
    expect(res.status).toBe(400);
    expect(res.type).toBe("application/problem+json");
    const paths = (res.json.errors as { path: string }[]).map((e) => e.path).sort();
    expect(paths).toEqual(["from", "id", "issuedAt", "kind"]);
  });

  it("answers 400 for a body that is not JSON", async () => {
    const res = await post("{");
    expect(res).toMatchObject({ status: 400, type: "application/problem+json" });
  });

  it("answers 400 when the id does not belong to the target", async () => {
    const res = await post(actionRequest("app", 1, { id: "other:1" }));
    expect(res.status).toBe(400);
    expect(res.json.errors).toEqual([{ path: "id", message: 'expected "app:<epoch>"' }]);
  });

  it("answers 404 for an unknown target", async () => {
    const res = await post(actionRequest("ghost", 1));
    expect(res).toMatchObject({ status: 404, type: "application/problem+json" });
    expect(res.json.detail).toContain("ghost");
  });

  it("accepts with 202, answers the same id with 200 and the current report, and another id mid-action with 409", async () => {
    const first = await post(actionRequest("app", 1));
    expect(first).toMatchObject({ status: 202, json: { id: "app:1", status: "accepted" } });
    await counting.started("hold");
    const again = await post(actionRequest("app", 1));
    expect(again.status).toBe(200);
    expect(again.json).toMatchObject({ actionId: "app:1", status: "running" });
    const other = await post(actionRequest("app", 2));
    expect(other).toMatchObject({ status: 409, type: "application/problem+json", json: { runningActionId: "app:1" } });

    const got = await signedGet(agent.url, "/v1/actions/app:1", SECRET);
    expect(got.status).toBe(200);
    expect(await got.json()).toMatchObject({ actionId: "app:1", status: "running" });

    counting.open("hold");
    await agent.runner.idle();
    expect(counting.count()).toBe(2);
    const done = (await (await signedGet(agent.url, "/v1/actions/app:1", SECRET)).json()) as Record<string, unknown>;
    expect(done).toMatchObject({ status: "succeeded", activeSide: "secondary" });
    // Once finished, a new id for the same target is accepted.
    expect((await post(actionRequest("app", 2))).status).toBe(202);
    await agent.runner.idle();
  });
});

describe("GET /v1/actions/:id, /metrics, /readyz", () => {
  it("answers 404 problem+json for an unknown action and 400 for a malformed id", async () => {
    const unknown = await signedGet(agent.url, "/v1/actions/app:999", SECRET);
    expect(unknown.status).toBe(404);
    expect(unknown.headers.get("content-type")).toBe("application/problem+json");
    expect((await signedGet(agent.url, "/v1/actions/not-an-id", SECRET)).status).toBe(400);
  });

  it("exposes actions by kind and result, step durations, report failures and the lease gauge", async () => {
    const res = await fetch(`${agent.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/plain");
    const text = await res.text();
    expect(text).toMatch(/turnout_agent_actions_total\{kind="failover",executor="dns-flip",result="succeeded"\} 2/);
    expect(text).toContain('turnout_agent_step_duration_seconds_bucket{le="0.01",executor="dns-flip",step="hold"');
    expect(text).toContain("turnout_agent_report_delivery_failures_total 0");
    expect(text).toContain("# TYPE turnout_agent_lease_leader gauge");
  });

  it("reports ready with the leadership state", async () => {
    const res = await fetch(`${agent.url}/readyz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ ready: true, detail: "leader: single replica" });
  });

  it("answers unknown paths with a 404 problem", async () => {
    const res = await fetch(`${agent.url}/v1/nothing`);
    expect(res.status).toBe(404);
    expect(res.headers.get("content-type")).toBe("application/problem+json");
  });
});
