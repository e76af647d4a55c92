/**
 * The worker's auth matrix (design §3, §3a, §6): every HTTP endpoint with no credential, a wrong
 * one, a replayed one, a tampered one, a viewer where an operator is needed, and the right one.
 * Each cell asserts the exact status, and that a refused request changed nothing (the target's
 * state and audit log are as before). The agent's endpoints have their own matrix
 * (test/agent/auth-matrix.test.ts); Slack's, with its replay guard, in test/worker/slack-*.
 */
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { sign } from "../../shared/signature.ts";
import { signSlackRequest } from "../../worker/http/slack/signature.ts";
import { signedPost, slashBody as slackSlashBody } from "../slack/slack-client.ts";
import { alertmanagerBody } from "../support/alertmanager-body.ts";
import { TEST_CREDENTIALS } from "./support/bindings.ts";
import { useRecordingObject } from "./support/recording-object.ts";
import { fetcher } from "./support/slack-routes.ts";

const T0 = Date.parse("2026-11-22T10:00:00Z");
useRecordingObject({ start: T0 });

const TARGET = "bg-a";
const {
  operator: OPERATOR,
  viewer: VIEWER,
  alertmanager: AM,
  nagios: NAGIOS,
  agentSecret: AGENT_SECRET,
  slackSigningSecret: SLACK_SECRET,
} = TEST_CREDENTIALS;

type Cell = "none" | "wrong" | "unknown" | "replayed" | "tampered" | "viewer" | "operator" | "valid";
type Build = () => Promise<Request>;

const url = (path: string) => `http://w${path}`;
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const tamper = (token: string) => `${token.slice(0, -1)}${token.endsWith("x") ? "y" : "x"}`;

const amBody = () =>
  JSON.stringify(
    alertmanagerBody({
      status: "firing",
      labels: { alertname: "Safety", target: TARGET, side: "primary" },
      startsAt: T0 - 1000,
      endsAt: T0,
      fingerprint: "matrix0000000001",
    }),
  );
const nagiosBody = "NOTIFICATIONTYPE=PROBLEM&HOSTNAME=matrix-host&HOSTSTATE=DOWN&HOSTSTATETYPE=HARD";
const reportBody = JSON.stringify({
  actionId: `${TARGET}:9`,
  target: TARGET,
  status: "running",
  dryRun: false,
  steps: [],
  at: new Date(T0).toISOString(),
});

/** A heartbeat of the `default` agent (the legacy `agent` key and TURNOUT_AGENT_SECRET), signed now. */
const heartbeatBody = () =>
  JSON.stringify({
    agent: "default",
    version: "1.2.3",
    mode: "cluster",
    pod: "turnout-agent-0",
    leader: "turnout-agent-0",
    at: new Date().toISOString(),
    targets: {},
  });
/** A heartbeat signed with `secret`, `ageSeconds` ago, naming `agent` in Turnout-Agent (null: no header). */
async function heartbeatPost(
  o: { secret?: string; agent?: string | null; ageSeconds?: number; sendBody?: string } = {},
) {
  const body = heartbeatBody();
  const headers: Record<string, string> = {
    "turnout-signature": await sign(o.secret ?? AGENT_SECRET, body, Date.now() / 1000 - (o.ageSeconds ?? 0)),
  };
  if (o.agent !== null) headers["turnout-agent"] = o.agent ?? "default";
  return post("/v1/agent/heartbeats", headers, o.sendBody ?? body);
}

/** A `/turnout pause` from an allowed user, with its own trigger_id (so its own signature). */
const slashBody = () => slackSlashBody(`pause ${TARGET}`);
/** A request signed as Slack signs it (v0 HMAC over `v0:<ts>:<body>`), optionally at another time or over other bytes. */
async function slack(path: string, body: string, o: { secret?: string; ageSeconds?: number; sendBody?: string } = {}) {
  const ts = Math.floor(Date.now() / 1000) - (o.ageSeconds ?? 0);
  return post(
    path,
    {
      "x-slack-request-timestamp": String(ts),
      "x-slack-signature": await signSlackRequest(o.secret ?? SLACK_SECRET, ts, body),
    },
    o.sendBody ?? body,
    "application/x-www-form-urlencoded",
  );
}

function post(path: string, headers: Record<string, string>, body: string, type = "application/json"): Request {
  return new Request(url(path), { method: "POST", headers: { "content-type": type, ...headers }, body });
}
function get(path: string, headers: Record<string, string> = {}): Request {
  return new Request(url(path), { headers });
}

/** Each endpoint's cells; a cell left out does not apply to that credential (e.g. no roles on ingest). */
const endpoints: { name: string; cells: Partial<Record<Cell, [Build, number]>> }[] = [
  {
    name: "POST /v1/alertmanager (bearer ALERTMANAGER_TOKEN)",
    cells: {
      none: [async () => post("/v1/alertmanager", {}, amBody()), 401],
      wrong: [async () => post("/v1/alertmanager", bearer(NAGIOS), amBody()), 401],
      tampered: [async () => post("/v1/alertmanager", bearer(tamper(AM)), amBody()), 401],
      viewer: [async () => post("/v1/alertmanager", bearer(VIEWER), amBody()), 401],
      operator: [async () => post("/v1/alertmanager", bearer(OPERATOR), amBody()), 401],
      valid: [async () => post("/v1/alertmanager", bearer(AM), amBody()), 200],
    },
  },
  {
    name: "POST /v1/nagios (bearer NAGIOS_TOKEN)",
    cells: {
      none: [async () => post("/v1/nagios", {}, nagiosBody, "application/x-www-form-urlencoded"), 401],
      wrong: [async () => post("/v1/nagios", bearer(AM), nagiosBody, "application/x-www-form-urlencoded"), 401],
      tampered: [
        async () => post("/v1/nagios", bearer(tamper(NAGIOS)), nagiosBody, "application/x-www-form-urlencoded"),
        401,
      ],
      operator: [
        async () => post("/v1/nagios", bearer(OPERATOR), nagiosBody, "application/x-www-form-urlencoded"),
        401,
      ],
      valid: [async () => post("/v1/nagios", bearer(NAGIOS), nagiosBody, "application/x-www-form-urlencoded"), 200],
    },
  },
  ...["/v1/targets", `/v1/targets/${TARGET}`, `/v1/targets/${TARGET}/events`, `/v1/targets/${TARGET}/recording`].map(
    (path) => ({
      name: `GET ${path} (viewer)`,
      cells: {
        none: [async () => get(path), 401],
        wrong: [async () => get(path, bearer("not-a-token-of-anyone")), 401],
        tampered: [async () => get(path, bearer(tamper(VIEWER))), 401],
        viewer: [async () => get(path, bearer(VIEWER)), 200],
        operator: [async () => get(path, bearer(OPERATOR)), 200],
      } as Partial<Record<Cell, [Build, number]>>,
    }),
  ),
  {
    name: "POST /v1/targets/:name/commands (operator)",
    cells: {
      none: [async () => post(`/v1/targets/${TARGET}/commands`, {}, '{"command":"pause"}'), 401],
      wrong: [async () => post(`/v1/targets/${TARGET}/commands`, bearer(AM), '{"command":"pause"}'), 401],
      tampered: [
        async () => post(`/v1/targets/${TARGET}/commands`, bearer(tamper(OPERATOR)), '{"command":"pause"}'),
        401,
      ],
      viewer: [async () => post(`/v1/targets/${TARGET}/commands`, bearer(VIEWER), '{"command":"pause"}'), 403],
      operator: [async () => post(`/v1/targets/${TARGET}/commands`, bearer(OPERATOR), '{"command":"pause"}'), 200],
    },
  },
  {
    name: "POST /v1/agent/reports (Turnout-Signature)",
    cells: {
      none: [async () => post("/v1/agent/reports", {}, reportBody), 401],
      wrong: [
        async () =>
          post(
            "/v1/agent/reports",
            { "turnout-signature": await sign("another-secret", reportBody, Date.now() / 1000) },
            reportBody,
          ),
        401,
      ],
      // A captured report sent again after the 300 s window.
      replayed: [
        async () =>
          post(
            "/v1/agent/reports",
            { "turnout-signature": await sign(AGENT_SECRET, reportBody, Date.now() / 1000 - 301) },
            reportBody,
          ),
        401,
      ],
      tampered: [
        async () =>
          post(
            "/v1/agent/reports",
            { "turnout-signature": await sign(AGENT_SECRET, reportBody, Date.now() / 1000) },
            reportBody.replace('"running"', '"succeeded"'),
          ),
        401,
      ],
      operator: [async () => post("/v1/agent/reports", bearer(OPERATOR), reportBody), 401],
      valid: [
        async () =>
          post(
            "/v1/agent/reports",
            { "turnout-signature": await sign(AGENT_SECRET, reportBody, Date.now() / 1000) },
            reportBody,
          ),
        200,
      ],
    },
  },
  {
    name: "POST /v1/agent/heartbeats (Turnout-Signature with the named agent's key)",
    cells: {
      none: [async () => post("/v1/agent/heartbeats", { "turnout-agent": "default" }, heartbeatBody()), 401],
      wrong: [async () => heartbeatPost({ secret: "another-secret-0123456789abcdef0123" }), 401],
      // A good signature, but for a name the worker has no key for.
      unknown: [async () => heartbeatPost({ agent: "agent-nobody" }), 401],
      replayed: [async () => heartbeatPost({ ageSeconds: 301 }), 401],
      tampered: [async () => heartbeatPost({ sendBody: heartbeatBody().replace('"cluster"', '"sandbox"') }), 401],
      operator: [async () => post("/v1/agent/heartbeats", bearer(OPERATOR), heartbeatBody()), 401],
      // No Turnout-Agent header means `default` (design §11.1).
      valid: [async () => heartbeatPost({ agent: null }), 200],
    },
  },
  {
    name: "GET /v1/agents (viewer)",
    cells: {
      none: [async () => get("/v1/agents"), 401],
      wrong: [async () => get("/v1/agents", bearer("not-a-token-of-anyone")), 401],
      tampered: [async () => get("/v1/agents", bearer(tamper(VIEWER))), 401],
      viewer: [async () => get("/v1/agents", bearer(VIEWER)), 200],
      operator: [async () => get("/v1/agents", bearer(OPERATOR)), 200],
    },
  },
  {
    name: "POST /v1/agent/reports/qstash-failure (Upstash-Signature)",
    cells: {
      none: [async () => post("/v1/agent/reports/qstash-failure", {}, "{}"), 401],
      wrong: [async () => post("/v1/agent/reports/qstash-failure", { "upstash-signature": "a.b.c" }, "{}"), 401],
      operator: [async () => post("/v1/agent/reports/qstash-failure", bearer(OPERATOR), "{}"), 401],
    },
  },
  {
    name: "POST /v1/slack/commands (Slack signature)",
    cells: {
      none: [async () => post("/v1/slack/commands", {}, slashBody(), "application/x-www-form-urlencoded"), 401],
      wrong: [async () => slack("/v1/slack/commands", slashBody(), { secret: "another-secret" }), 401],
      // Outside Slack's 5-minute window.
      replayed: [async () => slack("/v1/slack/commands", slashBody(), { ageSeconds: 301 }), 401],
      tampered: [
        async () => {
          const body = slashBody();
          return slack("/v1/slack/commands", body, { sendBody: body.replace("pause", "failover") });
        },
        401,
      ],
      operator: [
        async () => post("/v1/slack/commands", bearer(OPERATOR), slashBody(), "application/x-www-form-urlencoded"),
        401,
      ],
    },
  },
  {
    name: "POST /v1/slack/interactions (Slack signature)",
    cells: {
      none: [
        async () => post("/v1/slack/interactions", {}, "payload=%7B%7D", "application/x-www-form-urlencoded"),
        401,
      ],
      wrong: [async () => slack("/v1/slack/interactions", "payload=%7B%7D", { secret: "another-secret" }), 401],
      replayed: [async () => slack("/v1/slack/interactions", "payload=%7B%7D", { ageSeconds: 301 }), 401],
      operator: [
        async () =>
          post("/v1/slack/interactions", bearer(OPERATOR), "payload=%7B%7D", "application/x-www-form-urlencoded"),
        401,
      ],
    },
  },
  {
    name: "GET / (status page, viewer)",
    cells: {
      none: [async () => get("/"), 401],
      wrong: [async () => get("/", bearer("not-a-token-of-anyone")), 401],
      tampered: [async () => get("/", { cookie: "__Host-turnout_session=v2.9999999999.viewer.00" }), 401],
      viewer: [async () => get("/", bearer(VIEWER)), 200],
      operator: [async () => get("/", bearer(OPERATOR)), 200],
    },
  },
  {
    name: "POST /signin (status page sign-in form)",
    cells: {
      none: [async () => post("/signin", {}, "", "application/x-www-form-urlencoded"), 401],
      wrong: [async () => post("/signin", {}, "token=not-a-token-of-anyone", "application/x-www-form-urlencoded"), 401],
      tampered: [async () => post("/signin", {}, `token=${tamper(VIEWER)}`, "application/x-www-form-urlencoded"), 401],
      viewer: [async () => post("/signin", {}, `token=${VIEWER}`, "application/x-www-form-urlencoded"), 303],
    },
  },
  {
    name: "GET /healthz (none)",
    cells: { none: [async () => get("/healthz"), 200] },
  },
];

async function snapshot() {
  const stub = env.TARGETS.getByName(TARGET);
  const agent = await env.AGENTS.getByName("default").info("default");
  return {
    state: await stub.state(),
    events: await stub.events(0, 1000),
    signals: await stub.signals(),
    agent: { lastHeardAt: agent.lastHeardAt, pods: agent.pods, version: agent.version },
  };
}

describe("worker auth matrix", () => {
  for (const e of endpoints) {
    for (const [cell, [build, status]] of Object.entries(e.cells) as [Cell, [Build, number]][]) {
      it(`${e.name}: ${cell} → ${status}`, async () => {
        const before = await snapshot();
        const res = await exports.default.fetch(await build(), { redirect: "manual" } as RequestInit);
        expect(res.status).toBe(status);
        if (status >= 400) {
          if (res.headers.get("content-type")?.includes("json")) {
            expect(res.headers.get("content-type")).toContain("application/problem+json");
          }
          await res.arrayBuffer();
          expect(await snapshot()).toEqual(before);
        }
      });
    }
  }

  it("a signed Slack command sent twice within its window acts once: the replay is 200 'already handled'", async () => {
    const body = slashBody();
    // One timestamp for both, so the second is byte for byte the first (same signature).
    const timestamp = Math.floor(Date.now() / 1000);
    const first = await signedPost(fetcher, "/v1/slack/commands", body, { secret: SLACK_SECRET, timestamp });
    expect(first.status).toBe(200);
    const before = await snapshot();
    const again = await signedPost(fetcher, "/v1/slack/commands", body, { secret: SLACK_SECRET, timestamp });
    expect(again.status).toBe(200);
    expect(JSON.stringify(await again.json())).toMatch(/already handled/);
    expect(await snapshot()).toEqual(before);
  });

  it("a valid bearer request sent again is accepted and deduplicated (bearer tokens are not one-time)", async () => {
    const first = await exports.default.fetch(post("/v1/alertmanager", bearer(AM), amBody()));
    expect(await first.json()).toMatchObject({ accepted: 1 });
    const again = await exports.default.fetch(post("/v1/alertmanager", bearer(AM), amBody()));
    expect(await again.json()).toMatchObject({ accepted: 0, duplicates: 1 });
  });
});
