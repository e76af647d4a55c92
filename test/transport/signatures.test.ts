import { describe, expect, it } from "vitest";
import { SIGNATURE_HEADER, sign } from "../../shared/signature.ts";
import { verifyAgentReport, verifyQstashFailureCallback } from "../../worker/agents/transport.ts";
import { nowS, postAction as postTo, publishThrough, useAgentHarness } from "../support/agent-harness.ts";
import { actionRequest, countingExecutor } from "../support/test-executors.ts";
import { upstashJwt } from "../support/upstash-jwt.ts";

const SECRET = "current-agent-secret";
const NEXT = "next-agent-secret";

const counting = countingExecutor({ steps: ["one"] });
const harness = useAgentHarness({ targets: ["app"], secret: SECRET, nextSecret: NEXT, executor: counting.executor });

const postAction = (body: string, headers: Record<string, string>) => postTo(harness.agent.url, body, headers);

describe("worker → agent: Turnout-Signature on POST /v1/actions", () => {
  const body = JSON.stringify(actionRequest("app", 1));

  it("refuses a missing, malformed, tampered, wrongly keyed, replayed or future-dated signature with 401 and a distinct reason", async () => {
    const good = await sign(SECRET, body, nowS());
    const cases: [string, string, Record<string, string>][] = [
      ["missing", body, {}],
      ["malformed", body, { [SIGNATURE_HEADER]: "t=abc,v1=zz" }],
      ["mismatch", body.replace('"test"', '"tampered"'), { [SIGNATURE_HEADER]: good }],
      ["mismatch", body, { [SIGNATURE_HEADER]: await sign("wrong-key", body, nowS()) }],
      ["expired", body, { [SIGNATURE_HEADER]: await sign(SECRET, body, nowS() - 301) }],
      // Far enough past the 300 s window that a second ticking by before the request cannot bring it back in.
      ["future", body, { [SIGNATURE_HEADER]: await sign(SECRET, body, nowS() + 360) }],
    ];
    for (const [reason, b, headers] of cases) {
      const res = await postAction(b, headers);
      expect(res.status, reason).toBe(401);
      expect(res.type).toBe("application/problem+json");
      expect(res.json.reason).toBe(reason);
    }
    expect(counting.count()).toBe(0);
  });

  it("verifies before parsing: a body that is not even JSON still answers 401, not 400", async () => {
    const res = await postAction("{not json", { [SIGNATURE_HEADER]: await sign("wrong-key", "{not json", nowS()) });
    expect(res.status).toBe(401);
  });

  it("accepts the current secret and, during a rotation, TURNOUT_AGENT_SECRET_NEXT", async () => {
    const a = await postAction(body, { [SIGNATURE_HEADER]: await sign(SECRET, body, nowS()) });
    expect(a.status).toBe(202);
    const b2 = JSON.stringify(actionRequest("app", 1));
    const b = await postAction(b2, { [SIGNATURE_HEADER]: await sign(NEXT, b2, nowS() - 299) });
    expect(b.status).toBe(200); // same id: the current report
    await harness.agent.runner.idle();
  });
});

describe("agent → worker: verifyAgentReport", () => {
  const report = JSON.stringify({
    actionId: "app:7",
    target: "app",
    status: "running",
    dryRun: false,
    steps: [{ name: "one", status: "running" }],
    at: "2026-11-22T10:00:00.000Z",
  });
  const now = Date.now();
  const headers = (sig: string | undefined) => new Headers(sig ? { [SIGNATURE_HEADER]: sig } : {});

  it("returns the parsed report for a valid signature (current or next secret)", async () => {
    const r = await verifyAgentReport(report, headers(await sign(SECRET, report, now / 1000)), [SECRET, NEXT], now);
    expect(r).toMatchObject({ ok: true, report: { actionId: "app:7", status: "running" } });
    const n = await verifyAgentReport(report, headers(await sign(NEXT, report, now / 1000)), [SECRET, NEXT], now);
    expect(n.ok).toBe(true);
  });

  it("rejects missing, tampered, wrong-key and replayed reports with distinct reasons", async () => {
    const sig = await sign(SECRET, report, now / 1000);
    const cases: [string, string, string | undefined][] = [
      ["missing", report, undefined],
      ["mismatch", report.replace("running", "succeeded"), sig],
      ["mismatch", report, await sign("wrong-key", report, now / 1000)],
      ["expired", report, await sign(SECRET, report, now / 1000 - 301)],
    ];
    for (const [reason, body, s] of cases) {
      const r = await verifyAgentReport(body, headers(s), [SECRET, NEXT], now);
      expect(r).toMatchObject({ ok: false, status: 401, reason });
    }
  });

  it("answers 400 naming the fields of a validly signed but malformed report", async () => {
    const bad = JSON.stringify({ actionId: "nope", target: "app", status: "weird", at: "x" });
    const r = await verifyAgentReport(bad, headers(await sign(SECRET, bad, now / 1000)), [SECRET], now);
    expect(r.ok).toBe(false);
    if (r.ok || r.status !== 400) throw new Error("expected a 400");
    expect(r.errors?.map((e) => e.path).sort()).toEqual(["actionId", "at", "status"]);
  });
});

describe("QStash: Upstash-Signature with key rotation", () => {
  // The worker forwards its Turnout-Signature; the agent requires both (design §6).
  const publishTo = async (url: string, body: string) =>
    publishThrough(harness.qstash, url, body, await sign(SECRET, body, nowS()));

  it("the agent accepts deliveries signed with the current key, then the next key after a roll, and refuses an unknown key", async () => {
    const initial = harness.qstash.keys();
    expect(await publishTo(`${harness.agent.url}/v1/actions`, JSON.stringify(actionRequest("app", 2)))).toBe(202);
    harness.qstash.rotate(); // now signs with what the agent knows as the next key
    expect(harness.qstash.keys().current).toBe(initial.next);
    expect(await publishTo(`${harness.agent.url}/v1/actions`, JSON.stringify(actionRequest("app", 2)))).toBe(200);
    harness.qstash.rotate(); // rolled twice without redeploying: a key the agent never heard of
    expect(await publishTo(`${harness.agent.url}/v1/actions`, JSON.stringify(actionRequest("app", 3)))).toBe(401);
    await harness.agent.runner.idle();
  });

  it("the agent refuses an Upstash-Signature whose body hash does not match", async () => {
    const { SignJWT } = await import("jose");
    const t = nowS();
    const jwt = await new SignJWT({ body: "AAAA" })
      .setProtectedHeader({ alg: "HS256" })
      .setIssuer("Upstash")
      .setSubject(`${harness.agent.url}/v1/actions`)
      .setIssuedAt(t)
      .setNotBefore(t)
      .setExpirationTime(t + 300)
      .sign(new TextEncoder().encode(harness.qstash.keys().current));
    const res = await postAction(JSON.stringify(actionRequest("app", 9)), { "upstash-signature": jwt });
    expect(res.status).toBe(401);
    expect(res.json.reason).toBe("upstash-invalid");
  });

  it("verifyQstashFailureCallback accepts current and next keys and refuses others", async () => {
    const body = JSON.stringify({ status: 500, sourceMessageId: "msg_1", retried: 3, maxRetries: 3 });
    const keys = { current: "key-current", next: "key-next" };
    const url = "https://worker.example/v1/agent/reports/qstash-failure";
    const jwt = (key: string) => upstashJwt(key, body, url);
    for (const k of ["key-current", "key-next"]) {
      const r = await verifyQstashFailureCallback(body, new Headers({ "upstash-signature": await jwt(k) }), keys, url);
      expect(r).toMatchObject({ ok: true, agentStatus: 500 });
    }
    const bad = await verifyQstashFailureCallback(body, new Headers({ "upstash-signature": await jwt("other") }), keys);
    expect(bad).toMatchObject({ ok: false, status: 401, reason: "upstash-invalid" });
    const wrongUrl = await verifyQstashFailureCallback(
      body,
      new Headers({ "upstash-signature": await jwt("key-current") }),
      keys,
      "https://elsewhere.example/x",
    );
    expect(wrongUrl).toMatchObject({ ok: false, reason: "upstash-invalid" });
    const missing = await verifyQstashFailureCallback(body, new Headers(), keys);
    expect(missing).toMatchObject({ ok: false, reason: "upstash-missing" });
  });
});
