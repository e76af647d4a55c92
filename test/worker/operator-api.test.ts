import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { EventPage, TargetView } from "../../worker/target/target-object.ts";

const OPERATOR = { authorization: "Bearer test-operator-token" };
const get = (path: string) => exports.default.fetch(`http://w${path}`, { headers: OPERATOR });

async function alert(labels: Record<string, string>, status: "firing" | "resolved", fingerprint: string) {
  const body = {
    version: "4",
    alerts: [
      {
        status,
        labels,
        annotations: { summary: "probe" },
        startsAt: "2026-11-22T10:00:00Z",
        endsAt: status === "firing" ? "0001-01-01T00:00:00Z" : "2026-11-22T10:05:00Z",
        fingerprint,
      },
    ],
  };
  const res = await exports.default.fetch("http://w/v1/alertmanager", {
    method: "POST",
    headers: { authorization: "Bearer test-am-token" },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(200);
}

describe("operator API", () => {
  it("shows a target that never had a signal as steady, both sides up (nothing fires), activeSide from config", async () => {
    const res = await get("/v1/targets/quorum-two");
    expect(res.status).toBe(200);
    const view = (await res.json()) as TargetView;
    expect(view).toMatchObject({
      name: "quorum-two",
      activeSide: "secondary",
      phase: "steady",
      paused: false,
      flapping: false,
      cooldownUntil: null,
      pendingSince: null,
      action: null,
    });
    // Design §5 rule 1: a side is up when no signal fires on it, including before any arrived.
    expect(view.sides.primary).toMatchObject({ health: "up", firing: [] });
    expect(view.sides.secondary).toMatchObject({ health: "up", firing: [] });
  });

  it("shows firing signals and health per side, and the newest events", async () => {
    await alert({ alertname: "OperatorProbe", side: "primary" }, "firing", "op-1");
    await alert({ alertname: "OperatorProbe", side: "secondary" }, "resolved", "op-2");
    const view = (await (await get("/v1/targets/operator-view")).json()) as TargetView;
    expect(view.sides.primary.health).toBe("down");
    expect(view.sides.secondary).toMatchObject({ health: "up", firing: [] });
    expect(view.sides.primary.firing).toMatchObject([
      {
        key: "am:op-1",
        source: "alertmanager",
        side: "primary",
        status: "firing",
        held: false,
        at: "2026-11-22T10:00:00.000Z",
        labels: { alertname: "OperatorProbe", side: "primary", source: "alertmanager" },
      },
    ]);
    expect(view.lastEvents?.map((e) => e.type)).toEqual(
      expect.arrayContaining(["signal.firing", "signal.resolved", "side.health-changed", "phase.changed"]),
    );
    expect(view.lastEvents?.length).toBeLessThanOrEqual(20);
  });

  it("lists every configured target without events", async () => {
    const res = await get("/v1/targets");
    const { targets } = (await res.json()) as { targets: TargetView[] };
    const names = targets.map((t) => t.name);
    expect(names).toEqual(expect.arrayContaining(["fleet-0", "fixture-am", "operator-view", "quorum-two"]));
    expect(targets.every((t) => t.lastEvents === undefined)).toBe(true);
  });

  it("pages events oldest first with next", async () => {
    await alert({ alertname: "OperatorProbe", side: "primary" }, "firing", "op-3");
    const page = (await (await get("/v1/targets/operator-view/events?after=0&limit=2")).json()) as EventPage;
    expect(page.events.map((e) => e.seq)).toEqual([1, 2]);
    expect(page.next).toBe(2);
    expect(page.events[0]).toEqual({
      seq: 1,
      at: expect.stringMatching(/Z$/),
      type: expect.any(String),
      detail: expect.any(Object),
      cause: null,
    });
    const rest = (await (
      await get(`/v1/targets/operator-view/events?after=${page.next}&limit=1000`)
    ).json()) as EventPage;
    expect(rest.events[0]?.seq).toBe(3);
    expect(rest.next).toBeUndefined();
  });

  it("answers an unknown target with 404", async () => {
    const res = await get("/v1/targets/no-such-target");
    expect(res.status).toBe(404);
    expect(res.headers.get("content-type")).toBe("application/problem+json");
  });

  it("names every bad query parameter", async () => {
    const res = await get("/v1/targets/operator-view/events?after=-1&limit=abc");
    expect(res.status).toBe(400);
    const problem = (await res.json()) as { errors: { path: string }[] };
    expect(problem.errors.map((e) => e.path).sort()).toEqual(["query.after", "query.limit"]);
  });

  it("answers 503 with every config problem when the config is invalid", async () => {
    const { app } = await import("../../worker/http/app.ts");
    const res = await app.request("/v1/targets", { headers: OPERATOR }, { ...env, TURNOUT_CONFIG: "{}" });
    expect(res.status).toBe(503);
  });
});
