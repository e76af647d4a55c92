/**
 * Readiness is read-only (design §11.3): 100 evaluations of a target of every kind, and of a plan
 * with a step of every kind, toward both sides, leave the fake API's objects (its resourceVersion,
 * and no mutating request but the SelfSubjectAccessReviews, which store nothing), the real BIND's
 * zone serial and both real etcds' revisions exactly as they were, and the plan's http endpoint
 * receives no request (readiness only opens a TCP connection to it).
 */
import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createEtcdClient } from "../../agent/etcd/client.ts";
import { ACCESS_REVIEW_PATH } from "../../agent/sandbox/access-review.ts";
import type { RecordedRequest } from "../../agent/sandbox/fake-kube-api.ts";
import type { ReadinessReport } from "../../shared/protocol.ts";
import { PLAN, type ReadinessSandbox, startReadinessSandbox } from "./readiness-sandbox.ts";

let sandbox: ReadinessSandbox;

beforeAll(async () => {
  sandbox = await startReadinessSandbox();
}, 60_000);

afterAll(async () => {
  await sandbox?.stop();
});

function zoneSerial(port: number): number {
  const r = spawnSync("dig", ["+short", "+norecurse", "-p", String(port), "@127.0.0.1", "example.test", "SOA"], {
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`dig failed (run npm run setup for bind9-dnsutils): ${r.stderr}`);
  const serial = Number(r.stdout.trim().split(/\s+/)[2]);
  if (!Number.isInteger(serial)) throw new Error(`no SOA serial in ${JSON.stringify(r.stdout)}`);
  return serial;
}

async function revision(port: number): Promise<string> {
  const client = createEtcdClient({ endpoints: [`http://127.0.0.1:${port}`] });
  try {
    const status = await client.maintenance.status();
    return status.header.revision;
  } finally {
    client.close();
  }
}

const MUTATING = new Set(["POST", "PUT", "PATCH", "DELETE"]);

it("changes nothing in 100 evaluations: write log, zone serial, etcd revisions and the plan's http endpoint", async () => {
  const { cluster, ports } = sandbox;
  const readiness = sandbox.readiness();
  // The sandbox's own controllers settle first; from here only readiness talks to the API.
  await readiness.evaluate();
  const before = {
    resourceVersion: cluster.api.store.resourceVersion,
    serial: zoneSerial(ports.dns),
    primary: await revision(ports.primary),
    standby: await revision(ports.standby),
  };
  let last: ReadinessReport = {};
  const writes: RecordedRequest[] = [];
  let reviews = 0;
  let evaluations = 0;
  for (let i = 0; i < 100; i++) {
    cluster.api.requests.length = 0;
    const report = await readiness.evaluate();
    last = report;
    evaluations += Object.values(report).reduce((n, sides) => n + Object.keys(sides).length, 0);
    for (const r of cluster.api.requests) {
      if (!MUTATING.has(r.method)) continue;
      if (r.method === "POST" && r.path === ACCESS_REVIEW_PATH) reviews++;
      else writes.push(r);
    }
    // Every round really evaluated: each target ready toward the secondary.
    expect(Object.fromEntries(Object.entries(report).map(([t, s]) => [t, s.secondary?.ready]))).toEqual(
      Object.fromEntries(Object.keys(sandbox.config.targets).map((t) => [t, true])),
    );
  }
  expect(evaluations).toBe(100 * 6 * 2);
  expect(sandbox.lbRequests).toEqual([]);
  // The plan's every step kind with checks was evaluated (wait and approval have none).
  const planChecks = (last[PLAN]?.secondary?.checks ?? []).map((c) => c.name.split(":")[0]);
  expect(new Set(planChecks)).toEqual(
    new Set(["scale-up", "switch-config", "restart-app", "gate", "lb-pool", "swap-routes"]),
  );
  expect(reviews).toBeGreaterThan(0);
  expect(writes.map((w) => `${w.method} ${w.path}`)).toEqual([]);
  expect({
    resourceVersion: cluster.api.store.resourceVersion,
    serial: zoneSerial(ports.dns),
    primary: await revision(ports.primary),
    standby: await revision(ports.standby),
  }).toEqual(before);
}, 240_000);
