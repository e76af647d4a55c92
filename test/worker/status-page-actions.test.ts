/**
 * Operator actions from the status page, in workerd (design §5b, §3a): only an operator's session
 * with the CSRF token bound to that session, only once confirmed, with the same object methods,
 * break-glass rules and audited identity as the API. Viewers see no buttons; forged posts are 403
 * and leave the audit log as it was. Also the raw audit log, paged with every detail whole.
 */
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { HISTORY_WINDOW } from "../../worker/http/status-page/page.tsx";
import type { AuditEvent } from "../../worker/target/target-view.ts";
import { useAccessKeys } from "./support/access.ts";
import { TEST_CREDENTIALS } from "./support/bindings.ts";
import { useRecordingObject } from "./support/recording-object.ts";

// The real clock: sessions, the page's sentences and break-glass expiry all read Date.now().
const rec = useRecordingObject();
const TARGET = "bg-a";
const TOKENS = { operator: TEST_CREDENTIALS.operator, bob: TEST_CREDENTIALS.bob, viewer: TEST_CREDENTIALS.viewer };

const url = (path: string) => `https://turnout.example${path}`;
const get = (path: string, headers: Record<string, string> = {}) =>
  exports.default.fetch(url(path), { headers, redirect: "manual" });

/** Signs in with `/?token=` and returns the cookie pair the browser would send. */
async function login(who: keyof typeof TOKENS): Promise<string> {
  const res = await get(`/?token=${TOKENS[who]}`);
  expect(res.status).toBe(303);
  return (res.headers.get("set-cookie") ?? "").split(";")[0] ?? "";
}

async function page(cookie: string): Promise<string> {
  const res = await get("/", { cookie });
  expect(res.status).toBe(200);
  return res.text();
}

function cardOf(body: string, name: string): string {
  const card = body.split('<article class="card"').find((c) => c.includes(`data-target="${name}"`)) ?? "";
  return card.split("</article>")[0] ?? "";
}

function csrfOf(body: string): string {
  const m = /name="csrf" value="([0-9a-f]{64})"/.exec(body);
  if (!m?.[1]) throw new Error("no CSRF token on the page");
  return m[1];
}

function post(
  cookie: string | null,
  fields: Record<string, string>,
  headers: Record<string, string> = { accept: "application/json" },
  target = TARGET,
) {
  return exports.default.fetch(url(`/ui/targets/${target}/commands`), {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      ...(cookie === null ? {} : { cookie }),
      ...headers,
    },
    body: new URLSearchParams(fields).toString(),
    redirect: "manual",
  });
}

async function auditLog(target = TARGET): Promise<AuditEvent[]> {
  return (await env.TARGETS.getByName(target).events(0, 1000)).events;
}

describe("actions from the status page", () => {
  it("a viewer's session sees no buttons, no CSRF token and no dialog", async () => {
    const body = await page(await login("viewer"));
    const card = cardOf(body, TARGET);
    expect(card).toContain("steady on primary; both sides up");
    expect(body).not.toContain("<button");
    expect(body).not.toContain('name="csrf"');
    expect(body).not.toContain("<dialog");
    // An operator's session shows them.
    const op = cardOf(await page(await login("operator")), TARGET);
    expect(op).toMatch(/<button type="submit" data-question="[^"]+" aria-label="Pause: bg-a">Pause<\/button>/);
    expect(op).toContain("Dry-run drill");
  });

  it("forged posts (no session, no or a wrong CSRF token, another session's token, cross-origin) are 403 and change nothing", async () => {
    const cookie = await login("operator");
    const csrf = csrfOf(await page(cookie));
    const bobCsrf = csrfOf(await page(await login("bob")));
    const viewer = await login("viewer");
    await env.TARGETS.getByName(TARGET).view(TARGET);
    const before = await auditLog();
    const pause = { command: "pause", confirmed: "yes" };
    const forged: [string | null, Record<string, string>, Record<string, string>?][] = [
      [null, { ...pause, csrf }],
      [cookie, pause],
      [cookie, { ...pause, csrf: "" }],
      [cookie, { ...pause, csrf: csrf.replace(/^./, (ch) => (ch === "0" ? "1" : "0")) }],
      [cookie, { ...pause, csrf: bobCsrf }],
      [viewer, { ...pause, csrf }],
      [cookie, { ...pause, csrf }, { accept: "application/json", origin: "https://evil.example" }],
      // The API's bearer token does not stand in for the session here.
      [null, { ...pause, csrf }, { accept: "application/json", authorization: `Bearer ${TOKENS.operator}` }],
    ];
    for (const [c, fields, headers] of forged) {
      const res = await post(c, fields, headers);
      expect(res.status, JSON.stringify(fields)).toBe(403);
      expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    }
    expect(await auditLog()).toEqual(before);
    expect((await env.TARGETS.getByName(TARGET).view(TARGET)).paused).toBe(false);
    expect(rec.dispatched).toEqual([]);
  });

  it("without confirmation the server asks (a second click) and nothing changes", async () => {
    const cookie = await login("operator");
    const csrf = csrfOf(await page(cookie));
    const before = await auditLog();
    const res = await post(cookie, { command: "pause", csrf }, { accept: "text/html" });
    expect(res.status).toBe(200);
    const body = await res.text();
    expect(body).toContain("Confirm pause on bg-a");
    expect(body).toContain('name="confirmed" value="yes"');
    expect(await auditLog()).toEqual(before);
    const json = await post(cookie, { command: "pause", csrf });
    expect(json.status).toBe(400);
    expect(await auditLog()).toEqual(before);
  });

  it("a confirmed pause runs as the session's identity and answers the new sentence; a refused approve says why", async () => {
    const cookie = await login("operator");
    const csrf = csrfOf(await page(cookie));
    const res = await post(cookie, { command: "pause", csrf, confirmed: "yes", reason: "maintenance window" });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      ok: true,
      status: 200,
      message: "pause applied; now paused: automatic action is off until an operator resumes",
    });
    const accepted = (await auditLog()).find((e) => e.type === "command.accepted");
    expect(accepted?.detail).toMatchObject({ command: "pause", actor: "operator", reason: "maintenance window" });
    const card = cardOf(await page(cookie), TARGET);
    expect(card).toContain("paused: automatic action is off until an operator resumes");
    expect(card).toContain(">Resume</button>");
    const refused = await post(cookie, { command: "approve", csrf, confirmed: "yes" });
    expect(refused.status).toBe(409);
    expect(await refused.json()).toMatchObject({
      ok: false,
      message: "approve: nothing awaits approval (phase steady)",
    });
    // Without the script, the answer is a small page.
    const html = await post(cookie, { command: "resume", csrf, confirmed: "yes" }, { accept: "text/html" });
    expect(html.status).toBe(200);
    expect(await html.text()).toContain("resume on bg-a: done");
  });

  describe("behind Cloudflare Access", () => {
    const access = useAccessKeys();

    it("an operator's visit gets buttons with a token bound to its assertion and acts as the email; forgeries are 403", async () => {
      const alice = await access.headers("alice@example.com");
      const res = await get("/", alice);
      expect(res.status).toBe(200);
      const body = await res.text();
      expect(cardOf(body, TARGET)).toContain(">Pause</button>");
      const csrf = csrfOf(body);
      const before = await auditLog();
      const pause = { command: "pause", confirmed: "yes" };
      // Access adds the assertion to a forged cross-site request too; the forger lacks the token.
      const otherAssertion = await access.headers("alice@example.com", { exp: Math.floor(Date.now() / 1000) + 900 });
      const otherCsrf = csrfOf(await (await get("/", otherAssertion)).text());
      expect(otherCsrf).not.toBe(csrf);
      for (const [headers, fields] of [
        [alice, pause],
        [alice, { ...pause, csrf: otherCsrf }],
        [
          { ...alice, origin: "https://evil.example" },
          { ...pause, csrf },
        ],
        [await access.headers("alice@example.com", { aud: "other-app" }), { ...pause, csrf }],
        // A viewer's visit shows no buttons, and its post is refused even with a token of its own.
        [await access.headers("vic@viewers.example.com"), { ...pause, csrf }],
      ] as [Record<string, string>, Record<string, string>][]) {
        const refused = await post(null, fields, { accept: "application/json", ...headers });
        expect(refused.status, JSON.stringify(fields)).toBe(403);
      }
      expect(await auditLog()).toEqual(before);

      const done = await post(
        null,
        { ...pause, csrf, reason: "Access visit" },
        { accept: "application/json", ...alice },
      );
      expect(done.status).toBe(200);
      const accepted = (await auditLog()).find((e) => e.type === "command.accepted");
      expect(accepted?.detail).toMatchObject({ command: "pause", actor: "alice@example.com", reason: "Access visit" });

      const viewerPage = await (await get("/", await access.headers("vic@viewers.example.com"))).text();
      expect(viewerPage).not.toContain("<button");
      expect(viewerPage).not.toContain('name="csrf"');
    });
  });

  it("an unknown command or target is a 4xx problem naming the field", async () => {
    const cookie = await login("operator");
    const csrf = csrfOf(await page(cookie));
    const bad = await post(cookie, { command: "failover", csrf, confirmed: "yes" });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ errors: [{ path: "command" }] });
    expect((await post(cookie, { command: "pause", csrf, confirmed: "yes" }, undefined, "nope")).status).toBe(404);
  });

  it("break-glass: the page shows the request with its requester and expiry; the requester cannot confirm, another operator can", async () => {
    const requested = await exports.default.fetch(url(`/v1/targets/${TARGET}/commands`), {
      method: "POST",
      headers: { authorization: `Bearer ${TOKENS.bob}`, "content-type": "application/json" },
      body: JSON.stringify({ command: "failover", force: true, reason: "primary is on fire" }),
    });
    expect(requested.status).toBe(202);
    const { request } = (await requested.json()) as { request: { id: string; expiresAt: string } };

    const bob = await login("bob");
    const bobCard = cardOf(await page(bob), TARGET);
    expect(bobCard).toContain("forced failover by bob (primary is on fire); expires at");
    expect(bobCard).toContain(`<time datetime="${request.expiresAt}">`);
    expect(bobCard).toContain("You requested this; a different operator must confirm it.");
    expect(bobCard).not.toContain("Confirm forced failover");
    // Even posted by hand, the object refuses the requester (same rule as the API).
    const self = await post(bob, { command: "confirm", request: request.id, csrf: csrfOf(bobCard), confirmed: "yes" });
    expect(self.status).toBe(403);
    expect(rec.dispatched).toEqual([]);

    const op = await login("operator");
    const opCard = cardOf(await page(op), TARGET);
    expect(opCard).toContain(`name="request" value="${request.id}"`);
    expect(opCard).toContain(">Confirm forced failover</button>");
    const res = await post(op, { command: "confirm", request: request.id, csrf: csrfOf(opCard), confirmed: "yes" });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { ok: boolean; message: string };
    expect(body.ok).toBe(true);
    expect(body.message).toMatch(/^confirmed bob's forced failover; now executing: failover primary → secondary/);
    expect(rec.dispatched).toHaveLength(1);
    const approved = (await auditLog()).find((e) => e.type === "breakglass.approved");
    expect(approved?.detail).toMatchObject({ requester: "bob", approver: "operator" });
    // Confirmed: no longer offered.
    expect(cardOf(await page(op), TARGET)).not.toContain("Break-glass request");
  });

  it("break-glass: a request stays offered after an event storm pushed it out of the page's window, and one the target moved past is not", async () => {
    const force = (reason: string) =>
      exports.default.fetch(url(`/v1/targets/${TARGET}/commands`), {
        method: "POST",
        headers: { authorization: `Bearer ${TOKENS.bob}`, "content-type": "application/json" },
        body: JSON.stringify({ command: "failover", force: true, reason }),
      });
    const stale = (await (await force("made before the switch")).json()) as { request: { id: string } };
    // A manual switch moves the target on: the first request would now be refused as stale.
    const stub = env.TARGETS.getByName(TARGET);
    await stub.command(TARGET, { command: "failover", actor: "t" });
    await stub.report(TARGET, {
      actionId: rec.dispatched[0]?.id ?? "",
      target: TARGET,
      status: "succeeded",
      dryRun: false,
      steps: [],
      at: new Date().toISOString(),
    });
    const open = (await (await force("still needed")).json()) as { request: { id: string } };
    // More audit events than the page reads (HISTORY_WINDOW, 500) since the request.
    for (let i = 0; i < HISTORY_WINDOW + 20; i++)
      await stub.command(TARGET, { command: i % 2 ? "resume" : "pause", actor: "t" });
    expect((await auditLog()).length).toBeGreaterThan(HISTORY_WINDOW + 20);

    const card = cardOf(await page(await login("operator")), TARGET);
    expect(card).toContain(`name="request" value="${open.request.id}"`);
    expect(card).toContain("forced failover by bob (still needed)");
    expect(card).not.toContain(stale.request.id);
  });

  it("the raw audit log is paged with `after` and shows every detail whole", async () => {
    const cookie = await login("viewer");
    const stub = env.TARGETS.getByName(TARGET);
    const long = "x".repeat(400);
    for (let i = 0; i < 3; i++)
      await stub.command(TARGET, { command: i % 2 ? "resume" : "pause", actor: "t", reason: long });
    const events = await auditLog();
    const res = await get(`/audit/${TARGET}?after=0`, { cookie });
    expect(res.status).toBe(200);
    const body = await res.text();
    for (const e of events) expect(body).toContain(`id="seq-${e.seq}"`);
    // The long reason is there in full, inside pretty-printed JSON.
    expect(body).toContain(`&quot;reason&quot;: &quot;${long}&quot;`);
    expect(body).toContain("command accepted: pause by t");
    const last = events.at(-1)?.seq ?? 0;
    const tail = await (await get(`/audit/${TARGET}?after=${last - 1}`, { cookie })).text();
    expect(tail).toContain(`id="seq-${last}"`);
    expect(tail).not.toContain(`id="seq-${last - 1}"`);
    expect(tail).toContain("← Older events");
    const bad = await get(`/audit/${TARGET}?after=abc`, { cookie });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ errors: [{ path: "query.after" }] });
    expect((await get(`/audit/${TARGET}`)).status).toBe(401);
  });
});
