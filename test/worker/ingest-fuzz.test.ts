import { exports } from "cloudflare:workers";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import amTwo from "../fixtures/am-firing-2alerts-zulip.json" with { type: "json" };
import amTruncated from "../fixtures/am-firing-truncated-derived.json" with { type: "json" };
import amMixed from "../fixtures/am-mixed-firing-resolved-issue1051.json" with { type: "json" };
import grafanaV11 from "../fixtures/grafana-firing-values-v11-zulip.json" with { type: "json" };
import grafanaV8 from "../fixtures/grafana-resolved-truncated1-v8-zulip.json" with { type: "json" };
import icingaNotifications from "../fixtures/icinga-notifications-webhook-default-body.json" with { type: "json" };
import icinga2Problem from "../fixtures/icinga2-service-problem.json" with { type: "json" };
import nagiosHostDown from "../fixtures/nagios-host-down-problem.json" with { type: "json" };
import nagiosAck from "../fixtures/nagios-service-acknowledgement.json" with { type: "json" };
import nagiosSoft from "../fixtures/nagios-service-problem-soft-eventhandler.json" with { type: "json" };
import nagiosRecovery from "../fixtures/nagios-service-recovery.json" with { type: "json" };

type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };

const RUNS = 1000;

/** Applies each edit along a path chosen by the numbers: replace, delete, or descend. */
function mutate(base: JsonValue, edits: [number, number, JsonValue][]): JsonValue {
  const root = structuredClone(base);
  for (const [pick, action, value] of edits) {
    let node: JsonValue = root;
    let depth = 0;
    for (;;) {
      if (node === null || typeof node !== "object") break;
      const keys: (string | number)[] = Array.isArray(node) ? node.map((_, i) => i) : Object.keys(node);
      if (keys.length === 0) break;
      const key = keys[(pick >> depth) % keys.length] as string | number;
      const container = node as Record<string | number, JsonValue>;
      const child = container[key] as JsonValue;
      const descend = child !== null && typeof child === "object" && ((action >> depth) & 3) === 0;
      if (descend) {
        node = child;
        depth += 1;
        continue;
      }
      if ((action >> depth) % 5 === 1 && !Array.isArray(container)) delete container[key];
      else container[key] = value;
      break;
    }
  }
  return root;
}

const edits = fc.array(fc.tuple(fc.nat(), fc.nat(), fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<JsonValue>), {
  minLength: 1,
  maxLength: 4,
});

const amFixtures = [amTwo, amTruncated, amMixed, grafanaV8, grafanaV11] as JsonValue[];
const nagiosFixtures = [
  nagiosHostDown,
  nagiosAck,
  nagiosSoft,
  nagiosRecovery,
  icinga2Problem,
  icingaNotifications,
] as JsonValue[];

/** Random text, random JSON, or a fixture with a few edits, serialized. */
function bodies(fixtures: JsonValue[]): fc.Arbitrary<string> {
  return fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
    fc.tuple(fc.constantFrom(...fixtures), edits).map(([base, e]) => JSON.stringify(mutate(base, e))),
    fc.tuple(fc.constantFrom(...fixtures), fc.nat()).map(([base, cut]) => {
      const text = JSON.stringify(base);
      return text.slice(0, cut % text.length);
    }),
  );
}

/** Turns a JSON object into form fields where it is one, so form parsing is fuzzed too. */
function asForm(body: string): string {
  try {
    const value = JSON.parse(body) as JsonValue;
    if (value && typeof value === "object" && !Array.isArray(value)) {
      return new URLSearchParams(
        Object.entries(value).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]),
      ).toString();
    }
  } catch {
    // not JSON: send as is
  }
  return body;
}

/** Posts one body and answers its status, failing the property on any 5xx. */
async function statusOf(path: string, token: string, contentType: string | null, body: string): Promise<number> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (contentType) headers["content-type"] = contentType;
  const res = await exports.default.fetch(`http://w${path}`, { method: "POST", headers, body });
  expect(res.status).toBeLessThan(500);
  await res.arrayBuffer();
  return res.status;
}

describe("ingest fuzzing", () => {
  it(`never answers 5xx to ${RUNS} random or mutated Alertmanager bodies`, { timeout: 60_000 }, async () => {
    const seen = new Set<number>();
    await fc.assert(
      fc.asyncProperty(bodies(amFixtures), async (body) => {
        seen.add(await statusOf("/v1/alertmanager", "test-am-token", "application/json", body));
      }),
      { numRuns: RUNS },
    );
    // The generator reaches both outcomes, so the property is not vacuous.
    expect(seen).toContain(200);
    expect(seen).toContain(400);
  });

  it(`never answers 5xx to ${RUNS} random or mutated Nagios bodies, as JSON or form fields`, {
    timeout: 60_000,
  }, async () => {
    const seen = new Set<number>();
    await fc.assert(
      fc.asyncProperty(
        bodies(nagiosFixtures),
        fc.constantFrom("application/json", "application/x-www-form-urlencoded", null, "text/plain"),
        async (body, contentType) => {
          const payload = contentType === "application/x-www-form-urlencoded" ? asForm(body) : body;
          seen.add(await statusOf("/v1/nagios", "test-nagios-token", contentType, payload));
        },
      ),
      { numRuns: RUNS },
    );
    expect(seen).toContain(200);
    expect(seen).toContain(400);
  });
});
