/**
 * The agent's HTTP surface (design §6): an internal failure answers 500 problem+json
 * without the error's text (it can name hosts, paths, cluster internals), and targets are looked
 * up as own keys, so `constructor` or `__proto__` is an unknown target (404), not a crash.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InMemoryActionStore } from "../../agent/action-store.ts";
import { ActionRequestSchema } from "../../shared/protocol.ts";
import { SIGNATURE_HEADER, sign } from "../../shared/signature.ts";
import { type ReportReceiver, startReportReceiver } from "../support/report-receiver.ts";
import { actionRequest, countingExecutor, startTestAgent, type TestAgent } from "../support/test-executors.ts";

const SECRET = "surface-secret";
const INTERNAL = "connect ECONNREFUSED 10.96.0.1:443 /var/run/secrets/kubernetes.io/serviceaccount/token";
let receiver: ReportReceiver;
let agent: TestAgent;
const counting = countingExecutor({ steps: ["one"] });

/** A store whose Kubernetes API is down, with the text such a failure really carries. */
class BrokenStore extends InMemoryActionStore {
  override async latest(target: string) {
    if (target === "broken") throw new Error(INTERNAL);
    return super.latest(target);
  }
}

beforeAll(async () => {
  receiver = await startReportReceiver(SECRET);
  agent = await startTestAgent({
    targets: ["app", "broken"],
    reportUrl: receiver.url,
    secret: SECRET,
    executor: counting.executor,
    store: new BrokenStore(),
  });
});
afterAll(async () => {
  await agent.close();
  await receiver.close();
});

async function post(body: Record<string, unknown>) {
  const raw = JSON.stringify(body);
  const res = await fetch(`${agent.url}/v1/actions`, {
    method: "POST",
    headers: { "content-type": "application/json", [SIGNATURE_HEADER]: await sign(SECRET, raw, Date.now() / 1000) },
    body: raw,
  });
  return { status: res.status, type: res.headers.get("content-type"), text: await res.text() };
}

describe("the agent's error answers", () => {
  it("a failure inside answers 500 problem+json that does not repeat the error's text", async () => {
    const res = await post(actionRequest("broken", 1));
    expect(res.status).toBe(500);
    expect(res.type).toBe("application/problem+json");
    expect(res.text).not.toContain("ECONNREFUSED");
    expect(res.text).not.toContain("/var/run");
    expect(JSON.parse(res.text)).toMatchObject({ type: "urn:turnout:problem:internal", status: 500 });
  });

  it("inherited property names are unknown targets (404), never Object.prototype's members", async () => {
    // `constructor` is the one member of Object.prototype an action id's lower-case name can spell.
    const res = await post(actionRequest("constructor", 1));
    expect(res.status).toBe(404);
    expect(await agent.runner.submit(ActionRequestSchema.parse(actionRequest("constructor", 1)))).toEqual({
      outcome: "unknown-target",
    });
    expect(counting.count()).toBe(0);
  });
});
