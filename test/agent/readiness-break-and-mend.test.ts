/**
 * Readiness for each executor (design §11.3): in a sandbox with real BIND and etcd, one thing is
 * broken the way `turnout sandbox break` breaks it, one evaluation says not ready naming that
 * check and the metric says 0; mending it makes the next evaluation ready, the metric 1. Checks
 * that read the side being left are advisory: breaking them never makes a target not ready.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Readiness } from "../../agent/readiness/runner.ts";
import { failing, metricValue, type ReadinessSandbox, side, startReadinessSandbox } from "./readiness-sandbox.ts";

let sandbox: ReadinessSandbox;
let readiness: Readiness;

beforeAll(async () => {
  sandbox = await startReadinessSandbox();
  readiness = sandbox.readiness();
}, 60_000);

afterAll(async () => {
  await sandbox?.stop();
});

async function metric(name: string, labels: Record<string, string>): Promise<number | undefined> {
  return metricValue((await sandbox.metrics.render()).body, name, labels);
}

/** Breaks `check`, expects exactly it to fail (with its metrics at 0), mends it, expects ready again. */
async function breakAndMend(target: string, check: string, detail: RegExp): Promise<void> {
  const before = side(await readiness.evaluate(), target);
  expect(before.ready, JSON.stringify(before.checks)).toBe(true);
  expect(await metric("turnout_target_ready", { target, to: "secondary" })).toBe(1);

  await sandbox.faults.break(target, check);
  try {
    const broken = side(await readiness.evaluate(), target);
    expect(broken.ready).toBe(false);
    expect(failing(broken)).toEqual([check]);
    expect(broken.checks.find((c) => c.name === check)?.detail).toMatch(detail);
    expect(await metric("turnout_target_ready", { target, to: "secondary" })).toBe(0);
    expect(await metric("turnout_readiness_check_ok", { target, check })).toBe(0);
  } finally {
    await sandbox.faults.mend(target, check);
  }
  const mended = side(await readiness.evaluate(), target);
  expect(mended.ready, JSON.stringify(mended.checks)).toBe(true);
  expect(await metric("turnout_target_ready", { target, to: "secondary" })).toBe(1);
  expect(await metric("turnout_readiness_check_ok", { target, check })).toBe(1);
}

describe("readiness of a route-swap target", () => {
  it("is not ready while the spec saved for the incoming side names another gateway", async () => {
    await breakAndMend("egress-gw", "saved-spec", /gateway "203\.0\.113\.250".*does not match routes\.secondary/);
  });

  it("is not ready while the agent's Role lacks delete, naming the write", async () => {
    await breakAndMend(
      "egress-gw",
      "permissions",
      /does not allow: delete staticroutes\.networking\.digitalocean\.com\/primary/,
    );
  });

  it("reports the active side's route as matching its spec (no drift)", async () => {
    const s = side(await readiness.evaluate(), "egress-gw");
    expect(s.drift).toEqual({ ok: true, detail: "StaticRoute primary matches its spec" });
  });
});

describe("readiness of a dns-flip target", () => {
  it("is not ready while the DNS server is stopped", async () => {
    await breakAndMend("bootstrap-dns", "dns-server", /does not answer/);
  });

  it("is not ready with a TSIG key the server does not accept, while the server itself answers", async () => {
    const wrongKey = sandbox.readiness({ env: { TSIG_SECRET: Buffer.from("x".repeat(32)).toString("base64") } });
    const s = side(await wrongKey.evaluate(), "bootstrap-dns");
    expect(failing(s)).toEqual(["dns-key"]);
    expect(s.checks.find((c) => c.name === "dns-server")?.ok).toBe(true);
    expect(s.checks.find((c) => c.name === "dns-key")?.detail).toMatch(/BADSIG/);
  });

  it("says whether the record still holds the active side's values", async () => {
    const s = side(await readiness.evaluate(), "bootstrap-dns");
    expect(s.drift?.ok).toBe(true);
    expect(s.checks.find((c) => c.name === "dns-key")?.detail).toMatch(/prerequisite-only UPDATE accepted/);
  });
});

describe("readiness of a node-fence target", () => {
  it("is not ready while the incoming node group is NotReady", async () => {
    await breakAndMend("dc-nodes", "destination-nodes", /no Ready, schedulable node in the secondary group/);
  });

  it("stays ready when the group being left is NotReady: that check is advisory", async () => {
    await sandbox.faults.break("dc-nodes", "destination-nodes", "primary");
    try {
      const s = side(await readiness.evaluate(), "dc-nodes");
      expect(s.ready).toBe(true);
      const source = s.checks.find((c) => c.name === "source-nodes");
      expect(source).toMatchObject({ destination: false });
      expect(source?.detail).toMatch(/dc-1-1 NotReady/);
      // Toward the primary, the same fault is a destination failure.
      expect(failing(side(await readiness.evaluate(), "dc-nodes", "primary"))).toEqual(["destination-nodes"]);
    } finally {
      await sandbox.faults.mend("dc-nodes", "destination-nodes", "primary");
    }
  });
});

describe("readiness of an etcd-sync-teardown target", () => {
  it("is not ready while the agent's Role lacks patch of the synchronizer's scale", async () => {
    await breakAndMend("global-dr", "permissions", /patch deployments\/scale\.apps\/etcd-sync -n cpaas-system/);
  });

  it("is not ready once the standby's copy of the heartbeat is older than maxLagSeconds, and ready after a fresh one", async () => {
    expect(side(await readiness.evaluate(), "global-dr").ready).toBe(true);
    sandbox.clock.t += 31_000;
    const stale = side(await readiness.evaluate(), "global-dr");
    expect(failing(stale)).toEqual(["etcd-sync-lag"]);
    expect(stale.checks.find((c) => c.name === "etcd-sync-lag")?.detail).toMatch(/31\.0 s old \(maximum 30 s\)/);
    await sandbox.beat();
    expect(side(await readiness.evaluate(), "global-dr").ready).toBe(true);
  });

  it("carries its DNS target's checks, so a stopped DNS server shows on it too", async () => {
    await breakAndMend("global-dr", "dns-server", /does not answer/);
  });
});
