/**
 * `turnout status` says readiness (design §11.3) as the status page does: ready, or the failing
 * destination check in words with what to do, advisory checks marked, drift and unknown said.
 */
import { describe, expect, it } from "vitest";
import { note, type TargetView, targetDetail } from "../../cli/render.ts";
import { readinessSentence } from "../../shared/readiness-sentences.ts";

const NOW = Date.parse("2026-11-22T10:00:00.000Z");
const base: TargetView = {
  name: "web",
  activeSide: "primary",
  phase: "steady",
  sides: { primary: { health: "up", firing: [] }, secondary: { health: "up", firing: [] } },
  action: null,
};
const notReady: NonNullable<TargetView["readiness"]> = {
  to: "secondary",
  agent: "agent-b",
  state: "not-ready",
  at: "2026-11-22T09:59:00.000Z",
  checks: [
    { name: "permissions", ok: false, destination: true, detail: "the agent may not patch deployments/web" },
    { name: "etcd-source", ok: false, destination: false, detail: "no answer from http://10.0.0.10:2379" },
  ],
  drift: { side: "primary", ok: false, detail: "StaticRoute primary: gateway 10.0.0.9" },
};

describe("turnout status: readiness", () => {
  it("names the failing check with what to do, marks advisory checks and notes drift", () => {
    const out = targetDetail({ ...base, readiness: notReady }, NOW);
    expect(out).toContain(
      "readiness Not ready to fail over to secondary: the agent may not patch deployments/web (permissions); grant it to the agent's Role (npm run manifests prints what the config needs), see docs/operations.md#readiness",
    );
    expect(out).toContain("  FAILED etcd-source (advisory): no answer from http://10.0.0.10:2379");
    expect(out).toContain("primary (active) has drifted from its state: StaticRoute primary: gateway 10.0.0.9");
    expect(note({ ...base, readiness: notReady }, NOW)).toBe(
      "not ready to fail over to secondary (permissions); primary drifted",
    );
  });

  it("says ready, and unknown with why", () => {
    const ready = { ...notReady, state: "ready" as const, checks: [], drift: undefined };
    expect(readinessSentence(ready)).toBe("Ready to fail over to secondary");
    expect(note({ ...base, readiness: ready }, NOW)).toBe("");
    expect(readinessSentence({ ...ready, state: "unknown", unknown: "none", at: null })).toBe(
      "Readiness to fail over to secondary unknown: agent agent-b has not reported any",
    );
    expect(readinessSentence({ ...ready, state: "unknown", unknown: "stale" })).toContain("older than two intervals");
  });
});
