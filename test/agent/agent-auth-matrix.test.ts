/**
 * The agent's auth matrix (issue 16 acceptance, agent side): every HTTP endpoint of the agent,
 * each with no credential, a wrong one, a replayed one (a valid signature captured more than
 * 300 s ago), a tampered one and a valid one, on the direct and the QStash path. The exact status
 * of every cell is asserted, and that no refused request changed anything (no step ran, the store
 * holds no new record). The agent has no viewer/operator roles: the worker is its only client,
 * and /healthz, /readyz, /metrics are unauthenticated by contract (design §6) and stay inside the
 * cluster (the Ingress publishes only POST /v1/actions).
 */
import { beforeAll, describe, expect, it } from "vitest";
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
