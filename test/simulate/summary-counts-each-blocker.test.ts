/**
 * The summary's "blocked by reason" (design §10: quorum, flapping, cooldown, budget, both sides
 * down, stale) counts what the replayed rules did, one reason at a time, and the down minutes
 * split by what turnout was doing.
 */
import { describe, expect, it } from "vitest";
import { validateWorkerConfig } from "../../shared/config.ts";
import { simulate } from "../../worker/simulate/engine.ts";
import { parseWebhookLines } from "../../worker/simulate/inputs.ts";
import { AS_CONFIGURED, parseVariant } from "../../worker/simulate/variants.ts";

const T = (s: number) => new Date(Date.UTC(2026, 10, 2, 10, 0, s)).toISOString();

function config(policy: Record<string, unknown>) {
  const v = validateWorkerConfig({
    agent: { url: "http://127.0.0.1:8788" },
    targets: {
      gw: {
        sides: {
          primary: { anyOf: [['alertname="Down"', 'side="p"'], ['host="gw-p"']] },
          secondary: { anyOf: [['alertname="Down"', 'side="s"'], ['host="gw-s"']] },
        },
        policy,
      },
    },
  });
  if (!v.ok) throw new Error(JSON.stringify(v.problems));
  return v.value;
}

function am(at: number, status: "firing" | "resolved", side: "p" | "s", startsAt: number): string {
  const alert = {
    status,
    labels: { alertname: "Down", side },
    startsAt: T(startsAt),
    endsAt: status === "resolved" ? T(at) : "0001-01-01T00:00:00Z",
  };
  return JSON.stringify({ at: T(at), source: "alertmanager", body: { version: "4", alerts: [alert] } });
}

function nagios(at: number, type: "PROBLEM" | "RECOVERY", host: string): string {
  const state = type === "PROBLEM" ? "DOWN" : "UP";
  const epoch = Date.parse(T(at)) / 1000;
  return JSON.stringify({
    at: T(at),
    source: "nagios",
    body: `NOTIFICATIONTYPE=${type}&HOSTNAME=${host}&HOSTSTATE=${state}&HOSTSTATETYPE=HARD&HOSTPROBLEMID=1&TIMET=${epoch}`,
  });
}

function run(lines: string[], policy: Record<string, unknown>, variants: string[] = []) {
  const { inputs, problems } = parseWebhookLines(lines.join("\n"), "in");
  expect(problems).toEqual([]);
  const parsed = variants.map((t) => {
    const v = parseVariant(t);
    if (!v.ok) throw new Error(v.message);
    return v.variant;
  });
  return simulate(inputs, { config: config(policy), variants: [AS_CONFIGURED, ...parsed], actionSeconds: 5 }).variants;
}

describe("blocked by reason", () => {
  it("quorum: one source of two fires on the active side; the second source makes it down", () => {
    const [v] = run([am(0, "firing", "p", 0), nagios(60, "PROBLEM", "gw-p")], { holdSeconds: 30, quorum: 2 });
    expect(v?.summary.blocked.quorum).toBe(1);
    expect(v?.summary.failovers).toBe(1);
    // Unknown for 60 s is not down; down from 60 s, held 30 s, then switched.
    expect(v?.summary.downMs).toMatchObject({ hold: 30_000, total: 30_000 });
  });

  it("stale: a firing signal never sent again stops counting after staleAfterSeconds", () => {
    const [asConfigured, stale] = run([am(0, "firing", "p", 0)], { holdSeconds: 600 }, ["staleAfterSeconds=120"]);
    expect(asConfigured?.summary.blocked.stale).toBe(0);
    expect(asConfigured?.summary.failovers).toBe(1);
    // Gone stale at 120 s, inside the 600 s hold: the hold ends without a failover.
    expect(stale?.summary.blocked.stale).toBe(1);
    // Unknown because stale, not because of quorum.
    expect(stale?.summary.blocked.quorum).toBe(0);
    expect(stale?.summary.failovers).toBe(0);
    expect(stale?.summary.downMs.hold).toBe(120_000);
  });

  it("flapping: more than flap.maxTransitions up/down changes latch it; the failover waits for a stable window", () => {
    const lines: string[] = [];
    // Five 20 s outages 40 s apart (10 changes in 200 s), then one that lasts.
    for (let i = 0; i < 5; i++) {
      lines.push(am(i * 40, "firing", "p", i * 40), am(i * 40 + 20, "resolved", "p", i * 40));
    }
    lines.push(am(300, "firing", "p", 300));
    const [v] = run(lines, { holdSeconds: 30 });
    expect(v?.summary.blocked.flapping).toBe(1);
    expect(v?.summary.shortAlerts).toBe(5);
    // Released a whole window (600 s) after the last change at 300 s: held 30 s, blocked 570 s.
    expect(v?.summary.failovers).toBe(1);
    expect(v?.summary.downMs).toMatchObject({ blocked: 570_000 });
  });

  it("cooldown: the secondary fails a minute after the failover; failing back waits for the cooldown", () => {
    const [v] = run([am(0, "firing", "p", 0), am(100, "resolved", "p", 0), am(120, "firing", "s", 120)], {
      holdSeconds: 30,
      cooldownSeconds: 600,
    });
    expect(v?.summary.failovers).toBe(2);
    expect(v?.summary.blocked.cooldown).toBe(1);
    // Held 30 s on each side; the secondary blocked from 150 s until the cooldown ends at 35 + 600 s.
    expect(v?.summary.downMs).toMatchObject({ hold: 60_000, blocked: 635_000 - 150_000 });
  });
});
