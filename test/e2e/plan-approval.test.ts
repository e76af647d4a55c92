/**
 * A plan's approval step end to end (design §11.2, §11.6): the real worker in workerd and a real
 * agent process in the sandbox. The plan waits at `go-ahead`, then sends one `http` step to a
 * receiver that counts effects by Idempotency-Key. Approved from the API, from Slack (a signed
 * click on the button the worker posted) and from the status page (a session and its CSRF
 * token), each resumes the plan once: the agent's report shows the step approved and the next one
 * succeeded, and the receiver saw that action's request once. A second approval is 409 (Slack
 * says it was already approved); a step nobody approves fails the action `approval-timeout`.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentTarget } from "../../shared/config.ts";
import type { ActionReport } from "../../shared/protocol.ts";
import { approveValue, BOB, clickBody, type SlackAnswer, signedPost } from "../slack/slack-client.ts";
import { readText } from "../support/request-text.ts";
import { TEST_CREDENTIALS } from "../worker/support/bindings.ts";
import { type Stack, startStack, waitFor } from "./stack.ts";

const BOB_TOKEN = "e2e-bob-operator-token-0001";
const TIMEOUT_SECONDS = 3;

let stack: Stack;
let receiver: Server;
let receiverUrl = "";
/** Requests the plan's http step sent, by Idempotency-Key. */
const effects = new Map<string, number>();
/** What the worker posted to Slack's incoming webhook. */
const slackPosts: SlackAnswer[] = [];

const plan = (timeoutSeconds: number): AgentTarget =>
  ({
    kind: "plan",
    steps: [
      { name: "go-ahead", approval: { message: "Shift traffic to the other side?" }, timeoutSeconds },
      {
        name: "lb-pool",
        http: {
          method: "PUT",
          url: `${receiverUrl}/v1/pools/shop/active`,
          body: { primary: { pool: "dc-1" }, secondary: { pool: "dc-2" } },
          expectStatus: 200,
        },
      },
      // Keeps the action running a moment after the approval, so a second approval meets it.
      { name: "settle", wait: { seconds: 2 } },
    ],
  }) as unknown as AgentTarget;

beforeAll(async () => {
  receiver = createServer((req, res) => {
    void readText(req).then((body) => {
      // The worker's Slack notifications arrive at /slack (its incoming webhook); the rest is the plan's http step.
      if (req.url?.startsWith("/slack")) slackPosts.push(JSON.parse(body) as SlackAnswer);
      else {
        const key = String(req.headers["idempotency-key"]);
        effects.set(key, (effects.get(key) ?? 0) + 1);
      }
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", () => r()));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  stack = await startStack({
    targets: {
      shop: { kind: "plan", holdSeconds: 1, plan: plan(600), policy: { actionTimeoutSeconds: 120 } },
      late: { kind: "plan", holdSeconds: 1, plan: plan(TIMEOUT_SECONDS) },
    },
    workerConfig: { chatops: { slack: { allowedUsers: [BOB.id] } } },
    workerVars: {
      SLACK_SIGNING_SECRET: TEST_CREDENTIALS.slackSigningSecret,
      SLACK_WEBHOOK_URL: `${receiverUrl}/slack/hook`,
      OPERATOR_TOKENS: JSON.stringify({ bob: { token: BOB_TOKEN, role: "operator" } }),
    },
  });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  await new Promise<void>((r) => receiver?.close(() => r()));
});

/** Sends a manual command; resolves with the action id the target then runs. */
async function start(target: string, command: "failover" | "failback"): Promise<string> {
  const res = await stack.command(target, command);
  expect(res.status, await res.clone().text()).toBe(200);
  const view = await waitFor(`${target} dispatches`, async () => {
    const v = await stack.view(target);
    return v.action?.status === "dispatching" || v.action?.status === "running" ? v : undefined;
  });
  return view.action?.id ?? "";
}

const report = (id: string, match: (r: ActionReport) => boolean, what: string) =>
  waitFor(
    what,
    async () => {
      const r = await stack.agentReport(id);
      return r && match(r) ? r : undefined;
    },
    30_000,
  );

/** The agent waits at go-ahead, and the worker has heard so (an approval goes only to a step it knows waits). */
async function waiting(target: string, id: string): Promise<void> {
  await report(
    id,
    (r) => r.steps.some((s) => s.name === "go-ahead" && s.status === "waiting"),
    `${id} waits at go-ahead`,
  );
  await waitFor(`the worker shows ${id} waiting`, async () => {
    const v = await stack.view(target);
    return v.action?.id === id && v.action.steps.some((s) => s.name === "go-ahead" && s.status === "waiting");
  });
}

/** The plan went on once: the approval step succeeded, the http step ran and its receiver saw one request. */
async function resumedOnce(target: string, id: string, by: string): Promise<void> {
  const final = await report(id, (r) => r.status !== "running", `${id} finishes`);
  expect(final.status, JSON.stringify(final.error)).toBe("succeeded");
  expect(final.steps.map((s) => [s.name, s.status])).toEqual([
    ["go-ahead", "succeeded"],
    ["lb-pool", "succeeded"],
    ["settle", "succeeded"],
  ]);
  expect(final.steps[0]?.detail).toContain(by);
  expect(effects.get(`${id}:lb-pool`)).toBe(1);
  // The worker heard the final report too, so the target takes its next command.
  await waitFor(`the worker records ${id} succeeded`, async () => {
    const v = await stack.view(target);
    return v.action?.id === id && v.action.status === "succeeded" && v.phase !== "executing";
  });
}

const approveByApi = (target: string) =>
  stack
    .command(target, "approve", { step: "go-ahead" })
    .then(async (r) => ({ status: r.status, body: await r.text() }));

async function login(token: string): Promise<string> {
  const res = await fetch(`${stack.worker.url}/?token=${token}`, { redirect: "manual" });
  expect(res.status).toBe(303);
  return (res.headers.get("set-cookie") ?? "").split(";")[0] ?? "";
}

async function pageApprove(cookie: string, target: string): Promise<Response> {
  const page = await (await fetch(`${stack.worker.url}/`, { headers: { cookie } })).text();
  const card = page.split('<article class="card"').find((c) => c.includes(`data-target="${target}"`)) ?? "";
  const form = /<form[^>]*>(?:(?!<\/form>).)*name="step" value="go-ahead"(?:(?!<\/form>).)*<\/form>/s.exec(card)?.[0];
  // Once approved the step has no form; any of the page's forms carries the session's token.
  const csrf = /name="csrf" value="([0-9a-f]{64})"/.exec(form ?? page)?.[1] ?? "";
  expect(csrf).not.toBe("");
  return fetch(`${stack.worker.url}/ui/targets/${target}/commands`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json", cookie },
    body: new URLSearchParams({ csrf, command: "approve", step: "go-ahead", confirmed: "yes" }).toString(),
  });
}

const slackFetch = (url: string, init: RequestInit) => fetch(url.replace("http://w", stack.worker.url), init);

async function slackClick(value: string): Promise<SlackAnswer> {
  const res = await signedPost(slackFetch, "/v1/slack/interactions", clickBody("approve", value, BOB));
  expect(res.status).toBe(200);
  return (await res.json()) as SlackAnswer;
}

describe("a plan's approval step, worker and agent end to end", () => {
  it("approved through the API, it resumes the plan once; a second approval is 409", async () => {
    const id = await start("shop", "failover");
    await waiting(id.slice(0, id.lastIndexOf(":")), id);
    expect(effects.has(`${id}:lb-pool`)).toBe(false);
    const first = await approveByApi("shop");
    expect(first.status, first.body).toBe(200);
    const second = await approveByApi("shop");
    expect(second.status, second.body).toBe(409);
    expect(second.body).toContain("already approved by operator");
    await resumedOnce("shop", id, "operator");
  }, 60_000);

  it("approved from Slack (the posted button, a signed click), it resumes the plan once; a second click is refused", async () => {
    const id = await start("shop", "failback");
    await waiting(id.slice(0, id.lastIndexOf(":")), id);
    const posted = await waitFor("the Approve button in Slack", async () =>
      slackPosts.find((p) => JSON.stringify(p).includes(id) && approveValue(p)),
    );
    const value = approveValue(posted) ?? "";
    const ok = await slackClick(value);
    expect(ok.text).toContain(`step *go-ahead* of \`${id}\` approved by slack:UBOB(bob)`);
    const again = await slackClick(value);
    expect(again.text).toContain("already approved by slack:UBOB(bob)");
    expect((await approveByApi("shop")).status).toBe(409);
    await resumedOnce("shop", id, "slack:UBOB(bob)");
  }, 60_000);

  it("approved from the status page (session and CSRF), it resumes the plan once; a second post is 409", async () => {
    const id = await start("shop", "failover");
    await waiting(id.slice(0, id.lastIndexOf(":")), id);
    const cookie = await login(BOB_TOKEN);
    const ok = await pageApprove(cookie, "shop");
    expect(ok.status, await ok.clone().text()).toBe(200);
    const again = await pageApprove(cookie, "shop");
    expect(again.status).toBe(409);
    expect(await again.text()).toContain("already approved by bob");
    await resumedOnce("shop", id, "bob");
  }, 60_000);

  it("not approved in time, the action fails approval-timeout and the next step never runs", async () => {
    const id = await start("late", "failover");
    await waiting(id.slice(0, id.lastIndexOf(":")), id);
    const final = await report(id, (r) => r.status !== "running", `${id} times out`);
    expect(final.status).toBe("failed");
    expect(final.error?.code).toBe("approval-timeout");
    expect(final.steps.find((s) => s.name === "lb-pool")?.status).not.toBe("succeeded");
    expect(effects.has(`${id}:lb-pool`)).toBe(false);
    const view = await waitFor("the worker records the failure", async () => {
      const v = await stack.view("late");
      return v.action?.status === "failed" ? v : undefined;
    });
    expect(JSON.stringify(view.action)).toContain("approval-timeout");
  }, 60_000);
});
