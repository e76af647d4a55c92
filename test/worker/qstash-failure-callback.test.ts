/**
 * QStash's failure callback (design §6): `POST /v1/agent/reports/qstash-failure` verifies the
 * `Upstash-Signature` JWT (current, then next signing key) before parsing, and feeds the failed
 * delivery of the named action to its target's object. QStash's own retries are spent and a
 * re-publish under the same deduplication id would be swallowed, so the action fails at once.
 */

import { reset } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { ActionRequest } from "../../shared/protocol.ts";
import type { Env } from "../../worker/env.ts";
import { app } from "../../worker/http/app.ts";
import { TargetObject, type TargetView } from "../../worker/target/target-object.ts";
import { upstashJwt } from "../support/upstash-jwt.ts";
import { TEST_CREDENTIALS } from "./support/bindings.ts";

const CURRENT = "sig_current_key";
const NEXT = "sig_next_key";
const qstashEnv = { ...env, QSTASH_CURRENT_SIGNING_KEY: CURRENT, QSTASH_NEXT_SIGNING_KEY: NEXT };
let dispatched: ActionRequest[] = [];

beforeEach(() => {
  dispatched = [];
  TargetObject.testing = {
    dispatcher: {
      async dispatch(request) {
        dispatched.push(request);
        return { ok: true, detail: "published to QStash (recorded)" };
      },
    },
    notifier: { notify: async () => {} },
  };
});
afterEach(async () => {
  vi.restoreAllMocks();
  TargetObject.testing = undefined;
  await reset();
});

function base64(text: string): string {
  return btoa(String.fromCharCode(...new TextEncoder().encode(text)));
}

/** An Upstash-Signature as QStash signs the failure callback it posts to the worker. */
const upstashSignature = (key: string, body: string) =>
  upstashJwt(key, body, "https://turnout.example/v1/agent/reports/qstash-failure");

async function startFailover(): Promise<ActionRequest> {
  const res = await app.request(
    "/v1/targets/decide-auto/commands",
    {
      method: "POST",
      headers: { authorization: `Bearer ${TEST_CREDENTIALS.operator}`, "content-type": "application/json" },
      body: JSON.stringify({ command: "failover", actor: "alice" }),
    },
    qstashEnv,
  );
  expect(res.status).toBe(200);
  await env.TARGETS.getByName("decide-auto").settle();
  const request = dispatched[0];
  if (!request) throw new Error("nothing dispatched");
  return request;
}

function callbackBody(request: ActionRequest): string {
  return JSON.stringify({
    status: 503,
    retried: 3,
    maxRetries: 3,
    sourceMessageId: "msg_1",
    url: "http://agent.example/v1/actions",
    method: "POST",
    sourceBody: base64(JSON.stringify(request)),
    dlqId: "dlq_1",
  });
}

async function post(body: string, signature?: string): Promise<Response> {
  return app.request(
    "/v1/agent/reports/qstash-failure",
    {
      method: "POST",
      headers: { "content-type": "application/json", ...(signature ? { "upstash-signature": signature } : {}) },
      body,
    },
    qstashEnv,
  );
}

describe("QStash failure callback", () => {
  it("fails the action at once on a verified callback (no re-publish), with current or next key", async () => {
    const request = await startFailover();
    const body = callbackBody(request);
    const res = await post(body, await upstashSignature(CURRENT, body));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ accepted: true });
    const stub = env.TARGETS.getByName("decide-auto");
    await stub.settle();
    const view = (await stub.view("decide-auto")) as TargetView;
    // decide-auto allows two delivery retries, yet none is tried: QStash would deduplicate it.
    expect(view.phase).toBe("failed");
    expect(view.action).toMatchObject({
      id: request.id,
      status: "failed",
      error: { code: "dispatch-failed", message: "QStash gave up delivering to the agent (last status 503)" },
    });
    expect(view.lastEvents?.some((e) => e.type === "action.delivery-failed")).toBe(false);
    expect(dispatched).toHaveLength(1);
    // The next signing key verifies too (mid-rotation).
    const again = await post(body, await upstashSignature(NEXT, body));
    expect(again.status).toBe(200);
  });

  it("answers 503 (QStash retries its callback) when the target's object fails", async () => {
    const request = await startFailover();
    const body = callbackBody(request);
    const broken = {
      ...env.TARGETS,
      getByName: () =>
        ({ deliveryFailed: () => Promise.reject(new Error("object overloaded")) }) as unknown as ReturnType<
          Env["TARGETS"]["getByName"]
        >,
    } as unknown as Env["TARGETS"];
    vi.spyOn(console, "error").mockImplementation(() => {});
    const res = await app.request(
      "/v1/agent/reports/qstash-failure",
      {
        method: "POST",
        headers: { "content-type": "application/json", "upstash-signature": await upstashSignature(CURRENT, body) },
        body,
      },
      { ...qstashEnv, TARGETS: broken },
    );
    expect(res.status).toBe(503);
    expect(res.headers.get("content-type")).toBe("application/problem+json");
  });

  it("refuses a missing or wrongly signed callback before parsing, changing nothing", async () => {
    const request = await startFailover();
    const body = callbackBody(request);
    const missing = await post(body);
    expect(missing.status).toBe(401);
    expect(missing.headers.get("content-type")).toBe("application/problem+json");
    const wrong = await post(body, await upstashSignature("someone-else", body));
    expect(wrong.status).toBe(401);
    const tampered = await post(`${body} `, await upstashSignature(CURRENT, body));
    expect(tampered.status).toBe(401);
    const garbage = await post("{not json", await upstashSignature("someone-else", "{not json"));
    expect(garbage.status).toBe(401);
    const view = (await env.TARGETS.getByName("decide-auto").view("decide-auto")) as TargetView;
    expect(view.phase).toBe("executing");
    expect(view.lastEvents?.some((e) => e.type === "action.failed")).toBe(false);
  });
  it("applies only to the action its sourceBody names, and only while that action is the target's latest", async () => {
    const request = await startFailover();
    const stub = env.TARGETS.getByName("decide-auto");
    const before = await stub.events(0, 1000);
    const epoch = Number(request.id.slice(request.id.lastIndexOf(":") + 1));
    // An older action of the same target (e.g. QStash giving up on a message overtaken by this
    // one) and one the worker never issued: both signed by QStash, neither may fail the current.
    for (const id of [`decide-auto:${epoch - 1}`, `decide-auto:${epoch + 1}`]) {
      const body = callbackBody({ ...request, id });
      const res = await post(body, await upstashSignature(CURRENT, body));
      expect(res.status).toBe(200);
      await stub.settle();
    }
    const view = (await stub.view("decide-auto")) as TargetView;
    expect(view.phase).toBe("executing");
    expect(view.action).toMatchObject({ id: request.id, status: "dispatching" });
    expect(await stub.events(0, 1000)).toEqual(before);
    // The callback naming the current action still fails it.
    const body = callbackBody(request);
    expect((await post(body, await upstashSignature(CURRENT, body))).status).toBe(200);
    await stub.settle();
    expect(((await stub.view("decide-auto")) as TargetView).phase).toBe("failed");
  });
});
