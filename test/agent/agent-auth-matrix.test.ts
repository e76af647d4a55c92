/**
 * The agent's auth matrix (issue 16 acceptance, agent side): every HTTP endpoint of the agent,
 * each with no credential, a wrong one, a replayed one (a valid signature captured more than
 * 300 s ago), a tampered one and a valid one, on the direct and the QStash path. The exact status
 * of every cell is asserted, and that no refused request changed anything (no step ran, the store
 * holds no new record). The agent has no viewer/operator roles: the worker is its only client,
 * and /healthz, /readyz, /metrics are unauthenticated by contract (design §6) and stay inside the
 * cluster (the Ingress publishes only POST /v1/actions).
 *
 * With several agents (design §11.1) a second agent, `agent-b`, adds the placement cells: an
 * action addressed to another agent (or to none, which means `default`) is refused 421
 * `wrong-agent` before anything runs, on the direct and the QStash path, and only after its
 * signature verified; every answer and report names the agent in `Turnout-Agent`.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { AGENT_HEADER } from "../../shared/protocol.ts";
import { SIGNATURE_HEADER, sign, signPath } from "../../shared/signature.ts";
import { nowS, postAction, useAgentHarness } from "../support/agent-harness.ts";
import { actionRequest, countingExecutor } from "../support/test-executors.ts";
import { upstashJwt } from "../support/upstash-jwt.ts";

const SECRET = "matrix-agent-secret";

const counting = countingExecutor({ steps: ["one"] });
const harness = useAgentHarness({ targets: ["app", "seed"], secret: SECRET, executor: counting.executor });

const post = (body: string, headers: Record<string, string>) => postAction(harness.agent.url, body, headers);

beforeAll(async () => {
  // One finished action for the GET cells.
  const body = JSON.stringify(actionRequest("seed", 1));
  await post(body, { [SIGNATURE_HEADER]: await sign(SECRET, body, nowS()) });
  await harness.agent.runner.idle();
});

const upstash = (body: string, key = harness.qstash.keys().current, sub = `${harness.agent.url}/v1/actions`) =>
  upstashJwt(key, body, sub);

/** What the agent holds: runs of steps and the newest record of `app`. */
async function state(): Promise<string> {
  return JSON.stringify({
    runs: counting.count(),
    latest: (await harness.agent.store.latest("app"))?.request.id ?? null,
  });
}

type Cell = [name: string, headers: () => Promise<Record<string, string>>, body: string, status: number];

describe("POST /v1/actions", () => {
  const body = JSON.stringify(actionRequest("app", 1));
  const tampered = body.replace('"to":"secondary"', '"to":"primary"');
  const cells: Cell[] = [
    ["no credential", async () => ({}), body, 401],
    ["wrong secret", async () => ({ [SIGNATURE_HEADER]: await sign("wrong", body, nowS()) }), body, 401],
    [
      "replayed (captured 301 s ago)",
      async () => ({ [SIGNATURE_HEADER]: await sign(SECRET, body, nowS() - 301) }),
      body,
      401,
    ],
    ["tampered body", async () => ({ [SIGNATURE_HEADER]: await sign(SECRET, body, nowS()) }), tampered, 401],
    ["future-dated", async () => ({ [SIGNATURE_HEADER]: await sign(SECRET, body, nowS() + 360) }), body, 401],
    ["QStash: Upstash-Signature alone", async () => ({ "upstash-signature": await upstash(body) }), body, 401],
    [
      "QStash: Upstash-Signature with a wrong Turnout-Signature",
      async () => ({ "upstash-signature": await upstash(body), [SIGNATURE_HEADER]: await sign("wrong", body, nowS()) }),
      body,
      401,
    ],
    [
      "QStash: unknown signing key",
      async () => ({
        "upstash-signature": await upstash(body, "sig_not_a_key"),
        [SIGNATURE_HEADER]: await sign(SECRET, body, nowS()),
      }),
      body,
      401,
    ],
    [
      "QStash: signed for another destination",
      async () => ({
        "upstash-signature": await upstash(body, harness.qstash.keys().current, "https://elsewhere.example/"),
        [SIGNATURE_HEADER]: await sign(SECRET, body, nowS()),
      }),
      body,
      401,
    ],
    [
      // An empty header is not "no header": it must not skip the Upstash check and still widen
      // the replay window to qstash.maxAgeSeconds (a direct POST gets 300 s).
      "QStash: an empty Upstash-Signature with a Turnout-Signature an hour old",
      async () => ({ "upstash-signature": "", [SIGNATURE_HEADER]: await sign(SECRET, body, nowS() - 3600) }),
      body,
      401,
    ],
    [
      "QStash: Turnout-Signature past qstash.maxAgeSeconds",
      async () => ({
        "upstash-signature": await upstash(body),
        [SIGNATURE_HEADER]: await sign(SECRET, body, nowS() - 86_400 - 60),
      }),
      body,
      401,
    ],
  ];

  it.each(cells)("%s → %i, and nothing changes", async (_name, headers, sent, status) => {
    const before = await state();
    const res = await post(sent, await headers());
    expect(res.status).toBe(status);
    expect(res.type).toBe("application/problem+json");
    await harness.agent.runner.idle();
    expect(await state()).toBe(before);
  });

  it("valid → 202 and one run; the same signed request again (a replay within 300 s) → 200, no second run", async () => {
    const headers = { [SIGNATURE_HEADER]: await sign(SECRET, body, nowS()) };
    const first = await post(body, headers);
    expect(first.status).toBe(202);
    await harness.agent.runner.idle();
    const after = await state();
    const again = await post(body, headers);
    expect(again.status).toBe(200);
    await harness.agent.runner.idle();
    expect(await state()).toBe(after);
    expect(counting.calls.filter((c) => c.action === "app:1")).toHaveLength(1);
  });

  it("valid through QStash (both signatures) → 202", async () => {
    const next = JSON.stringify(actionRequest("app", 2));
    const res = await post(next, {
      "upstash-signature": await upstash(next),
      [SIGNATURE_HEADER]: await sign(SECRET, next, nowS() - 3600),
    });
    expect(res.status).toBe(202);
    await harness.agent.runner.idle();
  });
});

describe("GET /v1/actions/:id", () => {
  const path = "/v1/actions/seed:1";
  const cells: [string, () => Promise<Record<string, string>>, number][] = [
    ["no credential", async () => ({}), 401],
    ["wrong secret", async () => ({ [SIGNATURE_HEADER]: await signPath("wrong", path, nowS()) }), 401],
    [
      "replayed (captured 301 s ago)",
      async () => ({ [SIGNATURE_HEADER]: await signPath(SECRET, path, nowS() - 301) }),
      401,
    ],
    [
      "tampered (signed for another id)",
      async () => ({ [SIGNATURE_HEADER]: await signPath(SECRET, "/v1/actions/seed:2", nowS()) }),
      401,
    ],
    [
      "an Upstash-Signature does not authenticate a GET",
      async () => ({
        "upstash-signature": await upstash(path),
        [SIGNATURE_HEADER]: await signPath(SECRET, path, nowS() - 3600),
      }),
      401,
    ],
    ["valid", async () => ({ [SIGNATURE_HEADER]: await signPath(SECRET, path, nowS()) }), 200],
  ];
  it.each(cells)("%s → %i", async (_name, headers, status) => {
    const res = await fetch(`${harness.agent.url}${path}`, { headers: await headers() });
    expect(res.status).toBe(status);
    if (status === 200) expect(await res.json()).toMatchObject({ actionId: "seed:1", status: "succeeded" });
    else expect(await res.json()).toMatchObject({ status: 401 });
  });
});

describe("unauthenticated by contract (inside the cluster only)", () => {
  it.each(["/healthz", "/readyz", "/metrics"])("%s → 200 without a credential", async (path) => {
    expect((await fetch(`${harness.agent.url}${path}`)).status).toBe(200);
  });
});

describe("placement: agent-b refuses what is addressed to another agent (421 wrong-agent)", () => {
  const B_SECRET = "matrix-agent-b-secret";
  const countingB = countingExecutor({ steps: ["one"] });
  const b = useAgentHarness({ name: "agent-b", targets: ["app"], secret: B_SECRET, executor: countingB.executor });
  const postB = (sent: string, headers: Record<string, string>) => postAction(b.agent.url, sent, headers);
  const stateB = async () =>
    JSON.stringify({ runs: countingB.count(), latest: (await b.agent.store.latest("app"))?.request.id ?? null });
  const upstashB = (sent: string) => upstashJwt(b.qstash.keys().current, sent, `${b.agent.url}/v1/actions`);

  const toA = JSON.stringify(actionRequest("app", 1, { agent: "agent-a" }));
  const toNobody = JSON.stringify(actionRequest("app", 1));
  const toDefault = JSON.stringify(actionRequest("app", 1, { agent: "default" }));
  const placementCells: Cell[] = [
    [
      "addressed to agent-a, valid signature",
      async () => ({ [SIGNATURE_HEADER]: await sign(B_SECRET, toA, nowS()) }),
      toA,
      421,
    ],
    [
      "no agent in the request (means default), valid signature",
      async () => ({ [SIGNATURE_HEADER]: await sign(B_SECRET, toNobody, nowS()) }),
      toNobody,
      421,
    ],
    [
      "addressed to default, valid signature",
      async () => ({ [SIGNATURE_HEADER]: await sign(B_SECRET, toDefault, nowS()) }),
      toDefault,
      421,
    ],
    [
      "QStash: addressed to agent-a, both signatures valid",
      async () => ({
        "upstash-signature": await upstashB(toA),
        [SIGNATURE_HEADER]: await sign(B_SECRET, toA, nowS() - 3600),
      }),
      toA,
      421,
    ],
    // The signature comes first: a forger learns nothing about placement.
    [
      "addressed to agent-a, wrong secret",
      async () => ({ [SIGNATURE_HEADER]: await sign(SECRET, toA, nowS()) }),
      toA,
      401,
    ],
    [
      "addressed to agent-a, replayed (301 s ago)",
      async () => ({ [SIGNATURE_HEADER]: await sign(B_SECRET, toA, nowS() - 301) }),
      toA,
      401,
    ],
  ];

  it.each(placementCells)("%s → %i, and nothing runs", async (_name, headers, sent, status) => {
    const before = await stateB();
    const res = await postB(sent, await headers());
    expect(res.status).toBe(status);
    expect(res.type).toBe("application/problem+json");
    if (status === 421) {
      expect(res.json).toMatchObject({ type: "urn:turnout:problem:wrong-agent", status: 421, self: "agent-b" });
      expect(String(res.json.detail)).toContain("agent-b");
    }
    await b.agent.runner.idle();
    expect(await stateB()).toBe(before);
    expect(b.receiver.reports).toHaveLength(0);
  });

  it("the default agent refuses an action addressed to agent-a too, and takes one addressed to default", async () => {
    const before = await state();
    const misplaced = JSON.stringify(actionRequest("app", 7, { agent: "agent-a" }));
    const refused = await post(misplaced, { [SIGNATURE_HEADER]: await sign(SECRET, misplaced, nowS()) });
    expect(refused.status).toBe(421);
    expect(refused.json).toMatchObject({ type: "urn:turnout:problem:wrong-agent", agent: "agent-a", self: "default" });
    await harness.agent.runner.idle();
    expect(await state()).toBe(before);
    const placed = JSON.stringify(actionRequest("app", 8, { agent: "default" }));
    expect((await post(placed, { [SIGNATURE_HEADER]: await sign(SECRET, placed, nowS()) })).status).toBe(202);
    await harness.agent.runner.idle();
    expect(counting.calls.filter((c) => c.action === "app:8")).toHaveLength(1);
  });

  it("addressed to agent-b → 202, one run, and every report names agent-b in Turnout-Agent", async () => {
    const mine = JSON.stringify(actionRequest("app", 2, { agent: "agent-b" }));
    const res = await postB(mine, { [SIGNATURE_HEADER]: await sign(B_SECRET, mine, nowS()) });
    expect(res.status).toBe(202);
    await b.agent.runner.idle();
    await b.receiver.waitFor((r) => r.actionId === "app:2" && r.status === "succeeded");
    expect(countingB.calls.filter((c) => c.action === "app:2")).toHaveLength(1);
    expect(b.receiver.agents.length).toBeGreaterThan(0);
    expect(new Set(b.receiver.agents)).toEqual(new Set(["agent-b"]));
  });

  it("a signed GET answer, a refusal and the health endpoints name agent-b in Turnout-Agent", async () => {
    const path = "/v1/actions/app:2";
    const got = await fetch(`${b.agent.url}${path}`, {
      headers: { [SIGNATURE_HEADER]: await signPath(B_SECRET, path, nowS()) },
    });
    expect(got.status).toBe(200);
    expect(got.headers.get(AGENT_HEADER)).toBe("agent-b");
    const refused = await fetch(`${b.agent.url}${path}`);
    expect(refused.status).toBe(401);
    expect(refused.headers.get(AGENT_HEADER)).toBe("agent-b");
    for (const p of ["/healthz", "/readyz", "/metrics"]) {
      expect((await fetch(`${b.agent.url}${p}`)).headers.get(AGENT_HEADER)).toBe("agent-b");
    }
    // An agent unnamed in its config is `default`.
    expect((await fetch(`${harness.agent.url}/healthz`)).headers.get(AGENT_HEADER)).toBe("default");
  });
});
