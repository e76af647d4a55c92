/**
 * The QStash path needs both signatures (design §6): a valid Upstash-Signature alone runs
 * nothing, the forwarded Turnout-Signature may be up to `qstash.maxAgeSeconds` old there (never on
 * the direct path), the JWT's `sub` must equal `qstash.url`, and an epoch below the newest the
 * agent accepted for the target is refused. `GET /v1/actions/:id` needs a Turnout-Signature over
 * its path. Deliveries come from the fake QStash over real HTTP, or carry JWTs signed the way it
 * signs them.
 */
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../agent/config-file.ts";
import { startAgent } from "../../agent/main.ts";
import { SIGNATURE_HEADER, sign, signPath } from "../../shared/signature.ts";
import { nowS, postAction, publishThrough, useAgentHarness } from "../support/agent-harness.ts";
import { actionRequest, countingExecutor, testAgentConfig } from "../support/test-executors.ts";
import { upstashJwt as signUpstash } from "../support/upstash-jwt.ts";

const SECRET = "current-agent-secret";
const MAX_AGE = 3600;

const counting = countingExecutor({ steps: ["one"] });
const harness = useAgentHarness({
  targets: ["app", "other"],
  secret: SECRET,
  executor: counting.executor,
  qstashMaxAgeSeconds: MAX_AGE,
});

/** Publishes `body` to the agent through the fake QStash; `forwarded` is the Turnout-Signature it forwards. */
const publish = (body: string, forwarded?: string) =>
  publishThrough(harness.qstash, `${harness.agent.url}/v1/actions`, body, forwarded);

/** An Upstash-Signature as QStash signs it, for `sub` = `url`. */
const upstashJwt = (body: string, url: string) => signUpstash(harness.qstash.keys().current, body, url);

const post = (body: string, headers: Record<string, string>) => postAction(harness.agent.url, body, headers);

describe("the QStash path needs the Upstash-Signature AND the forwarded Turnout-Signature", () => {
  it("an Upstash-signed action without a valid Turnout-Signature is refused and runs nothing", async () => {
    const body = JSON.stringify(actionRequest("app", 1));
    expect(await publish(body)).toBe(401);
    expect(await publish(body, await sign("not-the-secret", body, nowS()))).toBe(401);
    // Signed for another body: a captured signature cannot be moved onto a different action.
    const other = JSON.stringify(actionRequest("app", 1, { to: "primary", from: "secondary" }));
    expect(await publish(body, await sign(SECRET, other, nowS()))).toBe(401);
    await harness.agent.runner.idle();
    expect(counting.count()).toBe(0);
    expect(await harness.agent.store.latest("app")).toBeUndefined();
  });

  it("accepts a forwarded Turnout-Signature up to qstash.maxAgeSeconds old, and not older", async () => {
    const tooOld = JSON.stringify(actionRequest("app", 2));
    expect(await publish(tooOld, await sign(SECRET, tooOld, nowS() - MAX_AGE - 60))).toBe(401);
    const body = JSON.stringify(actionRequest("app", 3));
    // An hour old: past the direct path's 300 s, as a QStash retry hours later would be.
    expect(await publish(body, await sign(SECRET, body, nowS() - MAX_AGE + 60))).toBe(202);
    await harness.agent.runner.idle();
    expect(counting.calls.filter((c) => c.action === "app:3")).toHaveLength(1);
  });

  it("the direct path keeps its 300 s window even though QStash is configured", async () => {
    const body = JSON.stringify(actionRequest("other", 1));
    const res = await post(body, { [SIGNATURE_HEADER]: await sign(SECRET, body, nowS() - MAX_AGE + 60) });
    expect(res.status).toBe(401);
    expect(res.json.reason).toBe("expired");
  });

  it("refuses a JWT whose sub is not qstash.url (QStash signed it for another destination)", async () => {
    const body = JSON.stringify(actionRequest("other", 2));
    const res = await post(body, {
      "upstash-signature": await upstashJwt(body, "https://elsewhere.example/hook"),
      [SIGNATURE_HEADER]: await sign(SECRET, body, nowS()),
    });
    expect(res.status).toBe(401);
    expect(res.json.reason).toBe("upstash-invalid");
    const ok = await post(body, {
      "upstash-signature": await upstashJwt(body, `${harness.agent.url}/v1/actions`),
      [SIGNATURE_HEADER]: await sign(SECRET, body, nowS()),
    });
    expect(ok.status).toBe(202);
    await harness.agent.runner.idle();
  });
});

describe("the epoch floor", () => {
  it("refuses an action whose epoch is below the newest accepted for its target, on either path", async () => {
    // app:3 was accepted above; app:2 is older: a replay QStash would deliver for hours.
    const older = JSON.stringify(actionRequest("app", 2));
    const runsBefore = counting.count();
    expect(await publish(older, await sign(SECRET, older, nowS()))).toBe(409);
    const direct = await post(older, { [SIGNATURE_HEADER]: await sign(SECRET, older, nowS()) });
    expect(direct.status).toBe(409);
    expect(direct.json).toMatchObject({ type: "urn:turnout:problem:stale-epoch", latestActionId: "app:3" });
    // The floor is per target, and a newer epoch is accepted.
    const newer = JSON.stringify(actionRequest("app", 4));
    expect((await post(newer, { [SIGNATURE_HEADER]: await sign(SECRET, newer, nowS()) })).status).toBe(202);
    await harness.agent.runner.idle();
    expect(counting.calls.filter((c) => c.action === "app:2")).toHaveLength(0);
    expect(counting.count()).toBe(runsBefore + 1);
  });
});

describe("GET /v1/actions/:id needs a Turnout-Signature over its path", () => {
  it("401 without or with a wrong signature; 200 with the path signed", async () => {
    const path = "/v1/actions/app:3";
    const get = (headers: Record<string, string>) => fetch(`${harness.agent.url}${path}`, { headers });
    const none = await get({});
    expect(none.status).toBe(401);
    expect(none.headers.get("content-type")).toBe("application/problem+json");
    expect((await get({ [SIGNATURE_HEADER]: await signPath("wrong-secret", path, nowS()) })).status).toBe(401);
    // Signed for another action's path: not transferable.
    expect((await get({ [SIGNATURE_HEADER]: await signPath(SECRET, "/v1/actions/app:4", nowS()) })).status).toBe(401);
    expect((await get({ [SIGNATURE_HEADER]: await signPath(SECRET, path, nowS() - 301) })).status).toBe(401);
    const ok = await get({ [SIGNATURE_HEADER]: await signPath(SECRET, path, nowS()) });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ actionId: "app:3", status: "succeeded" });
  });
});

describe("qstash.url is required with QStash keys", () => {
  it("startAgent refuses QSTASH_CURRENT_SIGNING_KEY without qstash.url, naming the key", async () => {
    const config = testAgentConfig(["app"], "http://127.0.0.1:1/v1/agent/reports");
    const started = startAgent({
      config,
      mode: "sandbox",
      env: { TURNOUT_AGENT_SECRET: SECRET, QSTASH_CURRENT_SIGNING_KEY: "sig_current" },
      localServers: false,
    });
    await expect(started).rejects.toBeInstanceOf(ConfigError);
    await expect(started).rejects.toThrow(/qstash\.url: required when QSTASH_CURRENT_SIGNING_KEY is set/);
  });
});
