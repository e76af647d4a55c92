/**
 * Approving a plan step from the status page, in workerd (design §11.2, §5b): the waiting step's
 * card shows its message and an Approve form carrying the step, bound to the session's CSRF token;
 * a confirmed post approves it as the session's identity (forwarded once to the agent), a second
 * is 409, a viewer's session sees no form, and a post without the CSRF token is 403.
 */
import { env, exports } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { ActionRequest } from "../../shared/protocol.ts";
import { TEST_CREDENTIALS } from "./support/bindings.ts";
import { fakeApprovalsAgent, runningReport, waitingSteps } from "./support/plan-agent.ts";
import { useRecordingObject } from "./support/recording-object.ts";

// The real clock: sessions and the page's sentences read Date.now().
const rec = useRecordingObject();
afterEach(() => {
  vi.restoreAllMocks();
});
const TARGET = "plan-a";
const url = (path: string) => `https://turnout.example${path}`;

async function login(token: string): Promise<string> {
  const res = await exports.default.fetch(url(`/?token=${token}`), { redirect: "manual" });
  expect(res.status).toBe(303);
  return (res.headers.get("set-cookie") ?? "").split(";")[0] ?? "";
}

async function card(cookie: string): Promise<string> {
  const res = await exports.default.fetch(url("/"), { headers: { cookie } });
  expect(res.status).toBe(200);
  const body = await res.text();
  const c = body.split('<article class="card"').find((x) => x.includes(`data-target="${TARGET}"`)) ?? "";
  return c.split("</article>")[0] ?? "";
}

const post = (cookie: string, fields: Record<string, string>) =>
  exports.default.fetch(url(`/ui/targets/${TARGET}/commands`), {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json", cookie },
    body: new URLSearchParams(fields).toString(),
  });

async function planWaiting(): Promise<ActionRequest> {
  const stub = env.TARGETS.getByName(TARGET);
  expect((await stub.command(TARGET, { command: "failover", actor: "operator" })).applied).toBe(true);
  await stub.settle();
  const req = rec.dispatched.at(-1);
  if (!req) throw new Error("nothing dispatched");
  const now = Date.now();
  await stub.report(TARGET, runningReport(req, now, waitingSteps(now, now + 900_000)));
  return req;
}

describe("approving a plan step from the status page", () => {
  it("the waiting step's form approves it as the session's identity once; a second post is 409", async () => {
    const calls = fakeApprovalsAgent();
    const req = await planWaiting();
    const cookie = await login(TEST_CREDENTIALS.bob);
    const html = await card(cookie);
    // The agent's message is escaped; the form names the step and carries the session's token.
    expect(html).toContain("Shift the HTTPRoute weights to &lt;secondary&gt;?");
    const form = /<form[^>]*>(?:(?!<\/form>).)*name="step" value="approve-shift"(?:(?!<\/form>).)*<\/form>/s.exec(
      html,
    )?.[0];
    expect(form).toBeDefined();
    const csrf = /name="csrf" value="([0-9a-f]{64})"/.exec(form ?? "")?.[1] ?? "";
    expect(form).toContain('aria-label="Approve approve-shift: plan-a"');

    const fields = { csrf, command: "approve", step: "approve-shift", confirmed: "yes" };
    const ok = await post(cookie, fields);
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { message: string }).message).toMatch(
      /^step approve-shift approved; the plan goes on/,
    );
    expect(calls.map((c) => JSON.parse(c.body))).toEqual([{ actionId: req.id, step: "approve-shift", by: "bob" }]);
    // The step now says who approved it, and offers no button.
    const after = await card(cookie);
    expect(after).toContain("Approved by bob at");
    expect(after).not.toContain('name="step" value="approve-shift"');

    const again = await post(cookie, fields);
    expect(again.status).toBe(409);
    expect(((await again.json()) as { message: string }).message).toContain("already approved by bob");
    expect(calls).toHaveLength(1);
  });

  it("a viewer's session sees no Approve form; a post without the session's CSRF token is 403 and forwards nothing", async () => {
    const calls = fakeApprovalsAgent();
    await planWaiting();
    const viewer = await card(await login(TEST_CREDENTIALS.viewer));
    expect(viewer).toContain("approve-shift: waiting for approval");
    expect(viewer).not.toContain('name="step"');
    const forged = await post(await login(TEST_CREDENTIALS.operator), {
      command: "approve",
      step: "approve-shift",
      confirmed: "yes",
    });
    expect(forged.status).toBe(403);
    expect(calls).toHaveLength(0);
  });
});
