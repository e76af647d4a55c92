/**
 * Identities and roles (design §3a) through the real app: named tokens, the legacy token,
 * Cloudflare Access, viewers read and operators command; the audited actor is the identity, a
 * body's `actor` only `onBehalfOf`; and two people for break-glass on every path.
 */
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { app } from "../../worker/http/app.ts";
import { tokenIdentities } from "../../worker/http/identity.ts";
import type { EventPage, TargetView } from "../../worker/target/target-object.ts";
import { useAccessKeys } from "./support/access.ts";
import { TEST_CREDENTIALS } from "./support/bindings.ts";
import { useRecordingObject } from "./support/recording-object.ts";

const T0 = Date.parse("2026-11-22T10:00:00Z");
const rec = useRecordingObject({ start: T0 });

const OPERATOR = `Bearer ${TEST_CREDENTIALS.operator}`;
const BOB = `Bearer ${TEST_CREDENTIALS.bob}`;
const VIEWER = `Bearer ${TEST_CREDENTIALS.viewer}`;

function call(path: string, auth: Record<string, string>, body?: unknown) {
  return exports.default.fetch(`http://w${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { ...auth, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}
const command = (target: string, auth: string, body: unknown) =>
  call(`/v1/targets/${target}/commands`, { authorization: auth }, body);

async function events(target: string): Promise<EventPage["events"]> {
  return (await env.TARGETS.getByName(target).events(0, 1000)).events;
}

async function alert(target: string, side: "primary" | "secondary", status: "firing" | "resolved" = "firing") {
  const res = await exports.default.fetch("http://w/v1/alertmanager", {
    method: "POST",
    headers: { authorization: `Bearer ${TEST_CREDENTIALS.alertmanager}` },
    body: JSON.stringify({
      version: "4",
      alerts: [
        {
          status,
          labels: { alertname: "Safety", target, side },
          startsAt: new Date(T0 - 60_000).toISOString(),
          endsAt: status === "firing" ? "0001-01-01T00:00:00Z" : new Date(T0).toISOString(),
          fingerprint: `${target}-${side}`,
        },
      ],
    }),
  });
  expect(res.status).toBe(200);
}

describe("identities and roles", () => {
  it("a viewer reads, and is refused commands with 403 that change nothing", async () => {
    expect((await call("/v1/targets/bg-a", { authorization: VIEWER })).status).toBe(200);
    const before = await events("bg-a");
    const res = await command("bg-a", VIEWER, { command: "pause" });
    expect(res.status).toBe(403);
    expect(res.headers.get("content-type")).toContain("application/problem+json");
    expect(((await res.json()) as { detail: string }).detail).toMatch(/viewer has role viewer; this needs operator/);
    expect(await events("bg-a")).toEqual(before);
  });

  it("an unknown or missing credential is 401", async () => {
    const unknown: Record<string, string>[] = [{ authorization: "Bearer not-a-token-of-anyone" }, {}];
    for (const auth of unknown) {
      const res = await call("/v1/targets", auth);
      expect(res.status).toBe(401);
      expect(res.headers.get("content-type")).toContain("application/problem+json");
    }
  });

  it("audits the authenticated identity as actor, and a body's actor only as onBehalfOf", async () => {
    const res = await command("bg-a", BOB, { command: "pause", actor: "mallory", reason: "maintenance" });
    expect(res.status).toBe(200);
    const accepted = (await events("bg-a")).find((e) => e.type === "command.accepted");
    expect(accepted?.detail).toMatchObject({ command: "pause", actor: "bob", onBehalfOf: "mallory" });
  });

  it("short or shared tokens make the config invalid, and /healthz names the identity, never the token", async () => {
    const short = tokenIdentities({ OPERATOR_TOKENS: JSON.stringify({ carol: { token: "short", role: "viewer" } }) });
    expect(short.identities).toEqual([]);
    expect(short.problems).toEqual([
      { path: "OPERATOR_TOKENS.carol", message: expect.stringMatching(/shorter than 16/) },
    ]);
    const shared = "a-shared-token-0123456789";
    const res = await app.request(
      "/healthz",
      {},
      {
        ...env,
        OPERATOR_TOKEN: shared,
        OPERATOR_TOKENS: JSON.stringify({ dave: { token: shared, role: "viewer" } }),
      },
    );
    const body = (await res.json()) as { config: string; errors: { path: string; message: string }[] };
    expect(body.config).toBe("invalid");
    expect(JSON.stringify(body)).not.toContain(shared);
    expect(body.errors.map((e) => e.message).join(" ")).toMatch(
      /dave and operator share a token|operator and dave share/,
    );
    // With an invalid credential set nobody authenticates.
    const refused = await app.request(
      "/v1/targets",
      { headers: { authorization: `Bearer ${shared}` } },
      { ...env, OPERATOR_TOKEN: shared, OPERATOR_TOKENS: JSON.stringify({ dave: { token: shared, role: "viewer" } }) },
    );
    expect(refused.status).toBe(401);
  });
});

describe("Cloudflare Access", () => {
  const signer = useAccessKeys();
  const access = signer.headers;

  it("maps the verified email to a role: operators command, domain viewers read, others are 403", async () => {
    expect(
      (await call("/v1/targets/bg-b/commands", await access("alice@example.com"), { command: "pause" })).status,
    ).toBe(200);
    const accepted = (await events("bg-b")).find((e) => e.type === "command.accepted");
    expect(accepted?.detail).toMatchObject({ actor: "alice@example.com" });
    expect((await call("/v1/targets", await access("vic@viewers.example.com"))).status).toBe(200);
    expect(
      (await call("/v1/targets/bg-b/commands", await access("vic@viewers.example.com"), { command: "resume" })).status,
    ).toBe(403);
    expect((await call("/v1/targets", await access("eve@elsewhere.example"))).status).toBe(403);
  });

  it("refuses another audience, an expired assertion and a forged one with 401", async () => {
    expect((await call("/v1/targets", await access("alice@example.com", { aud: "other-app" }))).status).toBe(401);
    expect(
      (await call("/v1/targets", await access("alice@example.com", { exp: Math.floor(Date.now() / 1000) - 60 })))
        .status,
    ).toBe(401);
    const real = await signer.assertion("alice@example.com");
    const [h, , sig] = real.split(".");
    const forgedPayload = btoa(JSON.stringify({ email: "root@example.com", aud: "test-access-aud" })).replace(
      /=+$/,
      "",
    );
    expect((await call("/v1/targets", { "cf-access-jwt-assertion": `${h}.${forgedPayload}.${sig}` })).status).toBe(401);
  });
});

describe("break-glass needs two people (design §3a)", () => {
  /** bg-c with its secondary down, so a forced failover is a real break-glass. */
  async function secondaryDown() {
    await alert("bg-c", "secondary");
    const view = (await (await call("/v1/targets/bg-c", { authorization: OPERATOR })).json()) as TargetView;
    expect(view.sides.secondary.health).toBe("down");
  }

  it("force from one identity executes nothing and answers 202 with the request", async () => {
    await secondaryDown();
    const res = await command("bg-c", OPERATOR, { command: "failover", force: true, reason: "datacenter fire" });
    expect(res.status).toBe(202);
    const body = (await res.json()) as { pending: string; request: { id: string; by: string; expiresAt: string } };
    expect(body).toMatchObject({
      pending: "break-glass",
      request: { command: "failover", target: "bg-c", by: "operator" },
    });
    expect(body.request.expiresAt).toBe(new Date(T0 + 15 * 60_000).toISOString());
    await env.TARGETS.getByName("bg-c").settle();
    expect(rec.dispatched).toHaveLength(0);
    // The second person hears of it.
    expect(
      rec.notes.some((n) => /BREAK-GLASS requested by operator: forced failover \(datacenter fire\)/.test(n.text)),
    ).toBe(true);
  });

  it("the requester confirming is 403 and changes nothing; a second operator executes exactly once, both audited", async () => {
    await secondaryDown();
    const made = await command("bg-c", OPERATOR, { command: "failover", force: true, reason: "fire" });
    const { request } = (await made.json()) as { request: { id: string } };
    const before = await events("bg-c");
    const self = await command("bg-c", OPERATOR, { command: "confirm", request: request.id });
    expect(self.status).toBe(403);
    expect(await events("bg-c")).toEqual(before);
    const ok = await command("bg-c", BOB, { command: "confirm", request: request.id });
    expect(ok.status).toBe(200);
    await env.TARGETS.getByName("bg-c").settle();
    expect(rec.dispatched).toMatchObject([{ kind: "failover", to: "secondary", force: true }]);
    const types = (await events("bg-c")).map((e) => [e.type, e.detail] as const);
    expect(types.find(([t]) => t === "breakglass.approved")?.[1]).toMatchObject({
      requester: "operator",
      approver: "bob",
    });
    expect(types.find(([t]) => t === "command.forced")?.[1]).toMatchObject({ actor: "bob" });
    const again = await command("bg-c", BOB, { command: "confirm", request: request.id });
    expect(again.status).toBe(409);
  });

  it("two confirmations racing produce one execution", async () => {
    await secondaryDown();
    const made = await command("bg-c", OPERATOR, { command: "failover", force: true });
    const { request } = (await made.json()) as { request: { id: string } };
    const [a, b] = await Promise.all([
      command("bg-c", BOB, { command: "confirm", request: request.id }),
      call("/v1/targets/bg-c/commands", await (async () => ({ authorization: BOB }))(), {
        command: "confirm",
        request: request.id,
      }),
    ]);
    expect([a.status, b.status].sort()).toEqual([200, 409]);
    await env.TARGETS.getByName("bg-c").settle();
    expect(new Set(rec.dispatched.map((d) => d.id)).size).toBe(1);
  });

  it("a Slack request is confirmed through the API, and an API request by a Slack click", async () => {
    const stub = env.TARGETS.getByName("bg-c");
    // As /turnout failover bg-c force records it (worker/http/slack/commands.ts).
    await stub.requestBreakGlass("bg-c", {
      nonce: "0123456789abcdef0123456789abcdef",
      command: "failover",
      requesterId: "UALICE",
      requester: "slack:UALICE(alice)",
      reason: "from slack",
    });
    expect(
      (await command("bg-c", BOB, { command: "confirm", request: "0123456789abcdef0123456789abcdef" })).status,
    ).toBe(200);
    await stub.settle();
    expect(rec.dispatched).toHaveLength(1);
    await stub.report("bg-c", {
      actionId: "bg-c:1",
      target: "bg-c",
      status: "succeeded",
      activeSide: "secondary",
      dryRun: false,
      steps: [],
      at: new Date(T0).toISOString(),
    });
    const made = await command("bg-c", OPERATOR, { command: "failback", force: true });
    const { request } = (await made.json()) as { request: { id: string } };
    // As the Slack Approve button resolves it (worker/http/slack/interactions.ts), by another person.
    const r = await stub.resolveBreakGlass("bg-c", {
      nonce: request.id,
      decision: "approve",
      actorId: "UBOB",
      actor: "slack:UBOB(bob)",
    });
    expect(r.outcome).toBe("executed");
  });

  it("an unknown request id is 404, and a malformed one 400 naming the field", async () => {
    expect((await command("bg-c", BOB, { command: "confirm", request: "f".repeat(32) })).status).toBe(404);
    const bad = await command("bg-c", BOB, { command: "confirm", request: "nope" });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { errors: { path: string }[] }).errors[0]?.path).toBe("request");
  });
});
