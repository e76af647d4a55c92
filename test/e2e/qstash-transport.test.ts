/**
 * The QStash transport end to end (design §6): the real worker in workerd publishes each
 * ActionRequest with the real `@upstash/qstash` Client to the fake QStash (real HTTP), which
 * delivers it with a real `Upstash-Signature` JWT to the agent process; the agent verifies it with
 * `Receiver`, executes, and reports straight back to the worker (Turnout-Signature). The Node
 * tests in test/transport/ cover the pieces; this file runs them together, inside workerd.
 *
 * One stack for the file. The fake's retry delay is the test's to set (`retryDelayMs`): zero
 * where QStash must give up at once, two seconds per retry where the agent must be started
 * before the retries run out (ten retries: as long as the stack allows the agent to start).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { sign } from "../../shared/signature.ts";
import { QSTASH_FAILURE_PATH } from "../../worker/agents/transport.ts";
import type { AuditEvent } from "../../worker/target/target-view.ts";
import { type FakeQstash, startFakeQstash } from "../support/fake-qstash.ts";
import { type Stack, startStack, TOKENS, waitFor } from "./stack.ts";

const QSTASH_TOKEN = "e2e-qstash-token";
const RETRIES = 10;
const ROUTE_SWAP_STEPS = ["preflight", "record-outgoing", "delete-outgoing", "create-incoming", "egress-check"];

let qstash: FakeQstash;
let stack: Stack;
let retryDelayMs = 0;

beforeAll(async () => {
  qstash = await startFakeQstash({ token: QSTASH_TOKEN, backoff: () => retryDelayMs });
  stack = await startStack({
    targets: {
      "queued-gw": { kind: "route-swap", holdSeconds: 1 },
      // The first failure callback fails the action (no further publishes to wait out).
      // Retries left on the worker's side: the failure callback must still fail it at once.
      "lost-gw": { kind: "route-swap", holdSeconds: 1, policy: { dispatchRetries: 3 } },
      "late-gw": { kind: "route-swap", holdSeconds: 1 },
    },
    qstash: { baseUrl: qstash.baseUrl, token: QSTASH_TOKEN, keys: qstash.keys(), retries: RETRIES },
  });
}, 60_000);

afterAll(async () => {
  await stack?.stop();
  await qstash?.close();
}, 30_000);

beforeEach(({ onTestFailed }) => {
  onTestFailed(() => {
    console.error(
      `fake QStash attempts:\n${JSON.stringify(
        qstash?.attempts.map(({ kind, url, retried, status }) => ({ kind, url, retried, status })),
      )}\n\nagent output (tail):\n${stack?.agentOutput().slice(-4000)}\n\nworker output (tail):\n${stack?.worker.output().slice(-4000)}`,
    );
  });
});

const ofType = (events: AuditEvent[], type: string) => events.filter((e) => e.type === type);

/** The one message the worker published for `actionId` (its deduplication id). */
function publishedFor(actionId: string) {
  const published = qstash.messages.filter((m) => m.publishHeaders["upstash-deduplication-id"] === actionId);
  expect(published).toHaveLength(1);
  const message = published[0];
  if (!message) throw new Error(`nothing published for ${actionId}`);
  return message;
}

const attemptsOf = (messageId: string, kind: "message" | "failure-callback" = "message") =>
  qstash.attempts.filter((a) => a.kind === kind && (kind === "message" ? a.messageId : a.body).includes(messageId));

/** The agent's log lines for `POST /v1/actions` accepting `actionId` (they name the signature `via`). */
const acceptances = (actionId: string) =>
  stack
    .agentOutput()
    .split("\n")
    .filter(
      (l) => l.includes('"msg":"action accepted"') && l.includes(`"action":"${actionId}"`) && l.includes('"via":'),
    );

describe("the QStash transport: workerd publishes, the fake QStash delivers, the agent verifies", () => {
  it("an alert for the primary gateway is published once, delivered once with a valid Upstash-Signature and run once", async () => {
    const answer = await stack.alert([{ target: "queued-gw", side: "primary", status: "firing", at: Date.now() }]);
    expect(answer.body).toMatchObject({ accepted: 1, targets: ["queued-gw"] });
    const view = await waitFor("queued-gw steady on secondary", async () => {
      const v = await stack.view("queued-gw");
      return v.phase === "steady" && v.action?.status === "succeeded" ? v : undefined;
    });
    expect(view).toMatchObject({
      activeSide: "secondary",
      action: { id: "queued-gw:1", kind: "failover", from: "primary", to: "secondary" },
    });

    // What the Client in workerd published (design §6).
    const message = publishedFor("queued-gw:1");
    expect(message.url).toBe(`${stack.agentUrl}/v1/actions`);
    expect(message.publishHeaders).toMatchObject({
      authorization: `Bearer ${QSTASH_TOKEN}`,
      "upstash-deduplication-id": "queued-gw:1",
      "upstash-flow-control-key": "queued-gw",
      "upstash-flow-control-value": "parallelism=1",
      "upstash-retries": String(RETRIES),
      "upstash-failure-callback": `${stack.worker.url}${QSTASH_FAILURE_PATH}`,
    });
    expect(message.publishHeaders["upstash-forward-turnout-signature"]).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    expect(JSON.parse(message.body)).toMatchObject({ id: "queued-gw:1", target: "queued-gw", to: "secondary" });
    expect(qstash.deduplicated).toBe(0);

    // One delivery, accepted (202) on the strength of its Upstash-Signature; no failure callback.
    const attempts = attemptsOf(message.messageId);
    expect(attempts.map((a) => a.status)).toEqual([202]);
    expect(attempts[0]?.headers).toHaveProperty("upstash-signature");
    expect(attempts[0]?.headers["turnout-signature"]).toBe(message.publishHeaders["upstash-forward-turnout-signature"]);
    expect(attemptsOf(message.messageId, "failure-callback")).toHaveLength(0);
    const accepted = acceptances("queued-gw:1");
    expect(accepted).toHaveLength(1);
    expect(accepted[0]).toContain('"via":"qstash"');

    // The delivery with its JWT tampered is refused although its Turnout-Signature is valid.
    const delivered = attempts[0];
    if (!delivered) throw new Error("no delivery");
    const forged = await fetch(message.url, {
      method: "POST",
      headers: { ...delivered.headers, "upstash-signature": `${delivered.headers["upstash-signature"]}x` },
      body: delivered.body,
    });
    expect(forged.status).toBe(401);
    expect(await forged.json()).toMatchObject({ reason: "upstash-invalid" });

    // Executed once: each step once, one action on the worker, the final report in the chain.
    const report = await stack.agentReport("queued-gw:1");
    expect(report).toMatchObject({ status: "succeeded", activeSide: "secondary" });
    expect(report?.steps.map((s) => s.name)).toEqual(ROUTE_SWAP_STEPS);
    expect(await stack.agentReport("queued-gw:2")).toBeUndefined();
    const events = await stack.events("queued-gw");
    const dispatched = ofType(events, "action.dispatched");
    const succeeded = ofType(events, "action.succeeded");
    expect(dispatched).toHaveLength(1);
    expect(succeeded).toHaveLength(1);
    expect(ofType(events, "action.delivery-failed")).toHaveLength(0);
    expect(succeeded[0]?.cause).toBe(dispatched[0]?.seq);
    const steady = events.filter((e) => e.type === "phase.changed").at(-1);
    expect(steady?.detail).toMatchObject({ from: "executing", to: "steady" });
    expect(steady?.cause).toBe(succeeded[0]?.seq);
  }, 30_000);

  it("a valid Upstash-Signature alone runs nothing, and a replayed older action is refused by the epoch floor", async () => {
    // Someone holding the QStash token publishes a new action of their own: QStash signs the
    // delivery, but nothing forwards a Turnout-Signature, so the agent refuses it.
    const publishRaw = async (body: string, headers: Record<string, string>) => {
      const before = qstash.attempts.length;
      const res = await fetch(`${qstash.baseUrl}/v2/publish/${stack.agentUrl}/v1/actions`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${QSTASH_TOKEN}`,
          "content-type": "application/json",
          "upstash-retries": "0",
          ...headers,
        },
        body,
      });
      expect(res.status).toBe(201);
      await qstash.idle();
      const attempt = qstash.attempts.slice(before).find((a) => a.kind === "message");
      expect(attempt?.headers).toHaveProperty("upstash-signature");
      return attempt?.status;
    };
    const original = publishedFor("queued-gw:1");
    const forged = JSON.stringify({
      ...JSON.parse(original.body),
      id: "queued-gw:7",
      issuedAt: new Date().toISOString(),
    });
    expect(await publishRaw(forged, {})).toBe(401);
    // Nor does a Turnout-Signature lifted from another message: it covers that message's body.
    expect(
      await publishRaw(forged, {
        "upstash-forward-turnout-signature": original.publishHeaders["upstash-forward-turnout-signature"] ?? "",
      }),
    ).toBe(401);
    expect(await stack.agentReport("queued-gw:7")).toBeUndefined();

    // The operator fails back: queued-gw:2 runs through QStash.
    await stack.alert([{ target: "queued-gw", side: "primary", status: "resolved", at: Date.now() }]);
    const failback = await stack.command("queued-gw", "failback");
    expect(failback.status, await failback.clone().text()).toBe(200);
    await waitFor("queued-gw back on primary", async () => {
      const v = await stack.view("queued-gw");
      return v.phase === "steady" && v.action?.id === "queued-gw:2" && v.action.status === "succeeded" ? v : undefined;
    });
    // The captured queued-gw:1 message is replayed (both signatures valid: QStash re-signs, and
    // the forwarded one is within qstash.maxAgeSeconds): the agent knows the id, answers its
    // report and runs nothing.
    const forwarded = original.publishHeaders["upstash-forward-turnout-signature"] ?? "";
    expect(await publishRaw(original.body, { "upstash-forward-turnout-signature": forwarded })).toBe(200);
    // An older epoch the agent holds no record of (records beyond the newest 20 are dropped),
    // signed with the real secret: refused by the epoch floor, not run.
    const older = JSON.stringify({ ...JSON.parse(original.body), id: "queued-gw:0" });
    const signed = await sign(TOKENS.agentSecret, older, Math.floor(Date.now() / 1000));
    expect(await publishRaw(older, { "upstash-forward-turnout-signature": signed })).toBe(409);
    expect(await stack.agentReport("queued-gw:0")).toBeUndefined();
    const view = await stack.view("queued-gw");
    expect(view).toMatchObject({ activeSide: "primary", phase: "steady", action: { id: "queued-gw:2" } });
    expect(acceptances("queued-gw:1")).toHaveLength(1);
    expect(stack.agentOutput()).not.toContain('"action":"queued-gw:7"');
  }, 30_000);

  it("an agent down for every retry: QStash's signed failure callback reaches the worker and the target fails", async () => {
    await stack.stopAgent();
    retryDelayMs = 0;
    const duplicatesBefore = qstash.deduplicated;
    await stack.alert([{ target: "lost-gw", side: "primary", status: "firing", at: Date.now() }]);
    const view = await waitFor("lost-gw failed", async () => {
      const v = await stack.view("lost-gw");
      return v.phase === "failed" ? v : undefined;
    });
    expect(view).toMatchObject({
      activeSide: "primary",
      action: { id: "lost-gw:1", status: "failed", error: { code: "dispatch-failed" } },
    });

    // Every attempt failed (nobody listening), then exactly one failure callback, accepted.
    const message = publishedFor("lost-gw:1");
    const attempts = attemptsOf(message.messageId);
    expect(attempts.map((a) => a.retried)).toEqual([...Array(RETRIES + 1).keys()]);
    expect(attempts.every((a) => a.status === "network-error")).toBe(true);
    const callbacks = attemptsOf(message.messageId, "failure-callback");
    expect(callbacks.map((c) => [c.url, c.status])).toEqual([[`${stack.worker.url}${QSTASH_FAILURE_PATH}`, 200]]);

    const events = await stack.events("lost-gw");
    expect(ofType(events, "action.dispatched")).toHaveLength(1);
    // No re-publish: QStash would deduplicate it (same id), so it could never be delivered.
    expect(qstash.messages.filter((m) => m.body.includes('"lost-gw:1"'))).toHaveLength(1);
    expect(qstash.deduplicated).toBe(duplicatesBefore);
    expect(ofType(events, "action.delivery-failed")).toHaveLength(0);
    const failed = ofType(events, "action.failed");
    expect(failed).toHaveLength(1);
    expect(failed[0]?.detail).toMatchObject({ id: "lost-gw:1", code: "dispatch-failed" });
    expect(JSON.stringify(failed[0]?.detail)).toContain("QStash gave up delivering to the agent");
    expect(events.filter((e) => e.type === "phase.changed").at(-1)?.detail).toMatchObject({ to: "failed" });

    // The worker verifies the callback's Upstash-Signature: a tampered copy is refused.
    const callback = callbacks[0];
    if (!callback) throw new Error("no failure callback");
    const forged = await fetch(callback.url, {
      method: "POST",
      headers: { ...callback.headers, "upstash-signature": `${callback.headers["upstash-signature"]}x` },
      body: callback.body,
    });
    expect(forged.status).toBe(401);
    expect(await forged.json()).toMatchObject({ reason: "upstash-invalid" });
  }, 30_000);

  it("an agent down at the first delivery and started during QStash's retries runs the action exactly once", async () => {
    await stack.stopAgent();
    // Ten retries two seconds apart: the 20 s the stack allows an agent to start.
    retryDelayMs = 2_000;
    await stack.alert([{ target: "late-gw", side: "primary", status: "firing", at: Date.now() }]);
    const firstFailure = await waitFor("the first delivery to late-gw to fail", async () =>
      qstash.attempts.find((a) => a.kind === "message" && a.body.includes('"late-gw:1"')),
    );
    expect(firstFailure.status).toBe("network-error");
    await stack.startAgent();

    const view = await waitFor(
      "late-gw steady on secondary",
      async () => {
        const v = await stack.view("late-gw");
        return v.phase === "steady" && v.action?.status === "succeeded" ? v : undefined;
      },
      RETRIES * retryDelayMs,
    );
    expect(view).toMatchObject({ activeSide: "secondary", action: { id: "late-gw:1" } });

    // QStash retried until the agent answered, then stopped: one 202, last, no failure callback.
    const message = publishedFor("late-gw:1");
    const statuses = attemptsOf(message.messageId).map((a) => a.status);
    expect(statuses[0]).toBe("network-error");
    expect(statuses.at(-1)).toBe(202);
    expect(statuses.filter((s) => typeof s === "number" && s >= 200 && s < 300)).toHaveLength(1);
    expect(attemptsOf(message.messageId, "failure-callback")).toHaveLength(0);
    expect(message.state).toBe("delivered");

    // The worker published once and never learned of the failed attempts; the agent ran it once.
    const events = await stack.events("late-gw");
    expect(ofType(events, "action.dispatched")).toHaveLength(1);
    expect(ofType(events, "action.delivery-failed")).toHaveLength(0);
    expect(ofType(events, "action.succeeded")).toHaveLength(1);
    expect(acceptances("late-gw:1")).toHaveLength(1);
    const report = await stack.agentReport("late-gw:1");
    expect(report).toMatchObject({ status: "succeeded", activeSide: "secondary" });
    expect(report?.steps.map((s) => s.name)).toEqual(ROUTE_SWAP_STEPS);
  }, 40_000);
});
