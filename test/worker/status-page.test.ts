/**
 * The status page `GET /` in workerd (design §5b): 401 without auth and no target data in it;
 * `/?token=` once sets an HttpOnly, Secure, SameSite=Strict session cookie (never the token) and
 * redirects; the cookie shows every target card and also reads `/v1/targets`, but never commands.
 */

import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { ActionRequest } from "../../shared/protocol.ts";
import { sign } from "../../shared/signature.ts";
import { issueSession, SESSION_TTL_SECONDS } from "../../worker/http/session.ts";
import testConfig from "../fixtures/worker-test-config.json" with { type: "json" };
import { TEST_CREDENTIALS } from "./support/bindings.ts";
import { postAlert } from "./support/post-alert.ts";
import { useRecordingObject } from "./support/recording-object.ts";

const TOKEN = TEST_CREDENTIALS.operator;
const names = Object.keys(testConfig.targets).sort();
// The real clock: sessions and the page's times are checked against Date.now().
const rec = useRecordingObject();

const get = (path: string, headers: Record<string, string> = {}) =>
  exports.default.fetch(`https://turnout.example${path}`, { headers, redirect: "manual" });

/** Logs in with `/?token=` and returns the cookie pair (`name=value`) the browser would send. */
async function login(): Promise<string> {
  const res = await get(`/?token=${TOKEN}`);
  expect(res.status).toBe(303);
  const setCookie = res.headers.get("set-cookie") ?? "";
  return setCookie.split(";")[0] ?? "";
}

function expectNoTargetData(body: string): void {
  for (const name of names) expect(body).not.toContain(name);
  expect(body).not.toMatch(/data-target=/);
}

describe("status page auth", () => {
  it("answers 401 HTML with no target names without a token, bearer or cookie", async () => {
    const res = await get("/");
    expect(res.status).toBe(401);
    expect(res.headers.get("content-type")).toMatch(/^text\/html/);
    const body = await res.text();
    expect(body).toContain("Sign in required");
    expectNoTargetData(body);
  });

  it("?token= sets an HttpOnly, Secure, SameSite=Strict HMAC session cookie (not the token) and redirects 303 to /", async () => {
    const res = await get(`/?token=${TOKEN}`);
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/");
    expect(res.headers.get("referrer-policy")).toBe("no-referrer");
    const cookie = res.headers.get("set-cookie") ?? "";
    const attrs = cookie.split(";").map((p) => p.trim());
    // The session names the identity it was issued to (design §3a), under a __Host- name.
    expect(attrs[0]).toMatch(/^__Host-turnout_session=v2\.\d+\.operator\.[0-9a-f]{64}$/);
    expect(attrs).toEqual(
      expect.arrayContaining(["HttpOnly", "Secure", "SameSite=Strict", "Path=/", `Max-Age=${SESSION_TTL_SECONDS}`]),
    );
    expect(cookie).not.toContain(TOKEN);
    const expiry = Number(/v2\.(\d+)\./.exec(cookie)?.[1]);
    expect(expiry - Date.now() / 1000).toBeGreaterThan(SESSION_TTL_SECONDS - 60);
    expect(expiry - Date.now() / 1000).toBeLessThanOrEqual(SESSION_TTL_SECONDS);
  });

  it("a wrong token never sets a cookie and shows no target data", async () => {
    for (const wrong of ["nope", `${TOKEN}x`, "", TOKEN.slice(0, -1)]) {
      const res = await get(`/?token=${encodeURIComponent(wrong)}`);
      expect(res.status).toBe(401);
      expect(res.headers.get("set-cookie")).toBeNull();
      const body = await res.text();
      expect(body).toContain("not valid");
      expectNoTargetData(body);
    }
  });

  it("with the cookie, lists every target card with its phase and active side", async () => {
    const cookie = await login();
    const res = await get("/", { cookie });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/html/);
    expect(res.headers.get("content-security-policy")).toMatch(/default-src 'none'/);
    const body = await res.text();
    for (const name of names) expect(body).toContain(`data-target="${name}"`);
    const cards = body.split('<article class="card"').slice(1);
    expect(cards).toHaveLength(names.length);
    for (const card of cards) {
      expect(card).toMatch(/data-field="phase">steady</);
      expect(card).toMatch(/<dt>Active side<\/dt><dd><strong data-field="activeSide">(primary|secondary)<\/strong>/);
    }
    // quorum-two starts on secondary (its initialActiveSide).
    const quorum = cards.find((c) => c.includes('data-target="quorum-two"')) ?? "";
    expect(quorum).toContain('data-field="activeSide">secondary<');
    for (const landmark of ["<header>", "<main", "<footer>", "<h1>", 'lang="en"', 'name="viewport"']) {
      expect(body).toContain(landmark);
    }
  });

  it("the bearer token also opens the page", async () => {
    const res = await get("/", { authorization: `Bearer ${TOKEN}` });
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('data-target="fleet-0"');
    expect((await get("/", { authorization: "Bearer wrong" })).status).toBe(401);
  });

  it("the cookie also authorizes GET /v1/targets, but not commands", async () => {
    const cookie = await login();
    const res = await get("/v1/targets", { cookie });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { targets: { name: string }[] };
    expect(body.targets.map((t) => t.name)).toEqual(names);
    const cmd = await exports.default.fetch("https://turnout.example/v1/targets/fleet-0/commands", {
      method: "POST",
      headers: { cookie, "content-type": "application/json" },
      body: JSON.stringify({ command: "drill" }),
    });
    expect(cmd.status).toBe(401);
    expect(rec.dispatched).toEqual([]);
  });

  it("refuses forged, expired and other-token cookies", async () => {
    const now = Date.now() / 1000;
    const expired = await issueSession(TOKEN, now - SESSION_TTL_SECONDS - 1);
    const otherToken = await issueSession("another-token", now);
    const valid = await issueSession(TOKEN, now);
    const tampered = valid.replace(/\.(\d+)\./, (_, e: string) => `.${Number(e) + 3600}.`);
    // Another identity's name on the operator's MAC: a session cannot be moved to another identity.
    const renamed = valid.replace(".operator.", ".bob.");
    for (const value of [expired, otherToken, tampered, renamed, TOKEN, "v1.9999999999.00"]) {
      const cookie = `__Host-turnout_session=${value}`;
      expect((await get("/", { cookie })).status).toBe(401);
      expect((await get("/v1/targets", { cookie })).status).toBe(401);
    }
    expect((await get("/", { cookie: `__Host-turnout_session=${valid}` })).status).toBe(200);
  });
});

describe("status page content", () => {
  const bearer = { authorization: `Bearer ${TOKEN}` };

  function cardOf(body: string, name: string): string {
    return body.split('<article class="card"').find((c) => c.includes(`data-target="${name}"`)) ?? "";
  }

  it("shows the last action as a step timeline with durations, the last drill with its recovery time, and events", async () => {
    const started = await exports.default.fetch("https://turnout.example/v1/targets/drill-dry-a/commands", {
      method: "POST",
      headers: { ...bearer, "content-type": "application/json" },
      body: JSON.stringify({ command: "drill", actor: "alice" }),
    });
    expect(started.status).toBe(200);
    const stub = env.TARGETS.getByName("drill-dry-a");
    await stub.settle();
    const req = rec.dispatched[0] as ActionRequest;
    const t = Date.now();
    const at = (ms: number) => new Date(t + ms).toISOString();
    const raw = JSON.stringify({
      actionId: req.id,
      target: req.target,
      status: "succeeded",
      dryRun: true,
      steps: [
        { name: "preflight", status: "succeeded", startedAt: at(0), finishedAt: at(1500) },
        { name: "check-standby", status: "failed", startedAt: at(1500), finishedAt: at(3750), detail: "lagging" },
      ],
      at: at(3750),
    });
    const rep = await exports.default.fetch("https://turnout.example/v1/agent/reports", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "Turnout-Signature": await sign("test-agent-secret", raw, t / 1000),
      },
      body: raw,
    });
    expect(rep.status).toBe(200);
    const card = cardOf(await (await get("/", bearer)).text(), "drill-dry-a");
    expect(card).toContain("Last action");
    expect(card).toMatch(/preflight: succeeded, 1\.5 s/);
    expect(card).toMatch(/check-standby: failed, 2\.3 s/);
    expect(card).toContain("lagging");
    expect(card).toMatch(/dry-run drill <strong>completed<\/strong> at <time datetime="[^"]+Z">/);
    expect(card).toMatch(/recovery drill \d+\.\d s/);
    // A drill is listed with the drills, not as an incident; the raw log is one link away.
    expect(card).toMatch(/dry-run completed, recovery \d+\.\d s/);
    expect(card).toContain("No incidents in the recent audit log.");
    expect(card).toContain('href="/audit/drill-dry-a"');
  });

  it("shows each side's health in words and its firing signals", async () => {
    const res = await postAlert(
      {
        labels: { alertname: "Drill", target: "drill-live", side: "secondary" },
        startsAt: Date.now() - 1000,
        fingerprint: "5ec0dd0000000000",
      },
      "https://turnout.example",
    );
    expect(res.status).toBe(200);
    const card = cardOf(await (await get("/", bearer)).text(), "drill-live");
    expect(card).toMatch(/data-field="health-secondary"><span aria-hidden="true">▼ <\/span>down</);
    expect(card).toMatch(/<strong>Drill<\/strong> from alertmanager since/);
    expect(card).toMatch(/data-field="phase">steady</);
  });
});
