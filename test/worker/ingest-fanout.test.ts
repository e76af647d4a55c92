import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Env } from "../../worker/env.ts";
import { app } from "../../worker/http/app.ts";

const AM = { authorization: "Bearer test-am-token", "content-type": "application/json" };

/** `count` firing alerts spread over fleet-0..fleet-9, alternating sides; fingerprints unique per run. */
function fleetAlerts(count: number, run: string) {
  return Array.from({ length: count }, (_, i) => ({
    status: "firing",
    labels: {
      alertname: "FleetProbe",
      fleet: String(i % 10),
      side: i % 20 < 10 ? "primary" : "secondary",
      n: String(i),
      run,
    },
    annotations: {},
    startsAt: "2026-11-22T10:00:00Z",
    endsAt: "0001-01-01T00:00:00Z",
    fingerprint: `${run}-${i}`,
  }));
}

const webhook = (alerts: unknown[]) =>
  JSON.stringify({ version: "4", status: "firing", receiver: "turnout", groupKey: "{}:{}", alerts });

describe("one webhook for many targets", () => {
  it("leaves each of 10 targets with exactly its own 10 of 100 alerts, and counts them", async () => {
    const run = crypto.randomUUID().slice(0, 8);
    const res = await exports.default.fetch("http://w/v1/alertmanager", {
      method: "POST",
      headers: AM,
      body: webhook(fleetAlerts(100, run)),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      accepted: 100,
      duplicates: 0,
      ignored: 0,
      targets: Array.from({ length: 10 }, (_, i) => `fleet-${i}`),
    });
    for (let t = 0; t < 10; t++) {
      const mine = (await env.TARGETS.getByName(`fleet-${t}`).signals()).filter((s) => s.labels.run === run);
      expect(mine).toHaveLength(10);
      expect(mine.every((s) => s.labels.fleet === String(t))).toBe(true);
      expect(mine.every((s) => s.side === s.labels.side)).toBe(true);
    }
  });

  it("counts a re-delivery as duplicates and unmatched alerts as ignored", async () => {
    const run = crypto.randomUUID().slice(0, 8);
    const alerts = fleetAlerts(20, run);
    const stray = { ...alerts[0], labels: { alertname: "NobodyRoutesThis" }, fingerprint: `${run}-stray` };
    const first = await exports.default.fetch("http://w/v1/alertmanager", {
      method: "POST",
      headers: AM,
      body: webhook([...alerts, stray]),
    });
    expect(await first.json()).toMatchObject({ accepted: 20, duplicates: 0, ignored: 1 });
    const again = await exports.default.fetch("http://w/v1/alertmanager", {
      method: "POST",
      headers: AM,
      body: webhook([...alerts, stray]),
    });
    expect(await again.json()).toMatchObject({ accepted: 0, duplicates: 20, ignored: 1 });
  });

  it("answers 200 with everything ignored when a valid body matches no target", async () => {
    const res = await exports.default.fetch("http://w/v1/alertmanager", {
      method: "POST",
      headers: AM,
      body: webhook([{ ...fleetAlerts(1, "x")[0], labels: { alertname: "Elsewhere" } }]),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ accepted: 0, duplicates: 0, ignored: 1, targets: [] });
  });

  it("answers 503 naming the target whose object failed, after recording the others", async () => {
    const run = crypto.randomUUID().slice(0, 8);
    // A test double: only getByName is used by the ingest route.
    const broken = {
      ...env.TARGETS,
      getByName: (name: string) =>
        name === "fleet-3"
          ? ({ ingest: () => Promise.reject(new Error("object overloaded")) } as unknown as ReturnType<
              Env["TARGETS"]["getByName"]
            >)
          : env.TARGETS.getByName(name),
    } as unknown as Env["TARGETS"];
    const res = await app.request(
      "/v1/alertmanager",
      { method: "POST", headers: AM, body: webhook(fleetAlerts(20, run)) },
      { ...env, TARGETS: broken },
    );
    expect(res.status).toBe(503);
    expect(res.headers.get("content-type")).toBe("application/problem+json");
    const problem = (await res.json()) as { detail: string; failedTargets: string[] };
    expect(problem.failedTargets).toEqual(["fleet-3"]);
    expect(problem.detail).toContain("fleet-3");
    const recorded = (await env.TARGETS.getByName("fleet-4").signals()).filter((s) => s.labels.run === run);
    expect(recorded).toHaveLength(2);
    // Alertmanager retries the whole group; the objects that succeeded count it as duplicates.
    const retry = await exports.default.fetch("http://w/v1/alertmanager", {
      method: "POST",
      headers: AM,
      body: webhook(fleetAlerts(20, run)),
    });
    expect(await retry.json()).toMatchObject({ accepted: 2, duplicates: 18 });
  });
});
