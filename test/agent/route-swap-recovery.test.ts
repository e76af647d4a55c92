/**
 * route-swap recovery: a crash after any step (or in the middle of a wait) followed by a
 * re-delivery or a resume converges, and the agent's StaticRoute writes are never repeated
 * (counted in the fake API's request log). Also the egress check against a local IP-echo service.
 */
import { describe, expect, it } from "vitest";
import { createRouteSwapExecutor, ROUTE_SWAP_STEPS } from "../../agent/executors/route-swap.ts";
import { useCleanups } from "../support/cleanups.ts";
import { freePort } from "../support/free-port.ts";
import {
  MapMemory,
  routeSwapTarget,
  runSteps,
  type SwapCluster,
  startEgressEcho,
  startSwapCluster,
  swapAction,
} from "../support/route-swap-cluster.ts";

const NAT = { "10.116.0.4": "203.0.113.4", "10.116.0.12": "203.0.113.12" };
const cleanup = useCleanups();

async function setup() {
  const c = await startSwapCluster();
  cleanup(() => c.close());
  await c.seedRoute("primary", ["34.160.111.145"], "10.116.0.4");
  const echo = await startEgressEcho(c.operators, NAT);
  cleanup(() => echo.close());
  const target = routeSwapTarget({
    egressCheck: {
      url: echo.url,
      expect: { primary: NAT["10.116.0.4"], secondary: NAT["10.116.0.12"] },
      timeoutSeconds: 2,
    },
  });
  const kubeConfig = c.api.kubeConfig();
  return { c, target, memory: new MapMemory(), newExecutor: () => createRouteSwapExecutor({ kubeConfig, pollMs: 20 }) };
}

function expectSwapped(c: SwapCluster): void {
  expect(c.route("primary")).toBeUndefined();
  for (const n of c.nodes) {
    expect(c.route("secondary")?.status?.create_fn?.[n]).toBe("Ready");
    expect(c.operators.table(n)).toEqual([
      { destination: "34.160.111.145", gateway: "10.116.0.12", route: "secondary" },
    ]);
  }
  expect(c.agentRouteWrites().map((w) => `${w.method} ${w.path.split("/").pop()}`)).toEqual([
    "DELETE primary",
    "PATCH secondary",
  ]);
}

describe("route-swap recovery", () => {
  it("checks egress through the new gateway's NAT address", async () => {
    const { c, target, memory, newExecutor } = await setup();
    const runs = await runSteps(newExecutor(), swapAction("primary", "secondary"), target, memory);
    expect(runs.map((r) => r.error?.message)).toEqual(Array(5).fill(undefined));
    expect(runs[4]?.outcome?.detail).toContain("203.0.113.12 (secondary NAT address)");
    expectSwapped(c);
  });

  it("fails the egress check when egress still shows another address, naming both", async () => {
    const { memory, newExecutor, target } = await setup();
    const wrong = { ...target, egressCheck: target.egressCheck && { ...target.egressCheck, timeoutSeconds: 0.3 } };
    if (wrong.egressCheck) wrong.egressCheck.expect.secondary = "203.0.113.99";
    const runs = await runSteps(newExecutor(), swapAction("primary", "secondary"), wrong, memory);
    const err = runs.at(-1)?.error;
    expect(err?.code).toBe("egress-mismatch");
    expect(err?.message).toContain('answered "203.0.113.12"; expected 203.0.113.99');
    expect(err?.message).toContain("A retry resumes at step egress-check");
  });

  it("names the transport error when the IP-echo service cannot be reached", async () => {
    const { memory, newExecutor, target } = await setup();
    const closed = await freePort();
    const unreachable = {
      ...target,
      egressCheck: target.egressCheck && {
        ...target.egressCheck,
        url: `http://127.0.0.1:${closed}/ip`,
        timeoutSeconds: 0.3,
      },
    };
    const runs = await runSteps(newExecutor(), swapAction("primary", "secondary"), unreachable, memory);
    // Not just "fetch failed": the cause a person can act on.
    expect(runs.at(-1)?.error?.message).toContain(`ECONNREFUSED 127.0.0.1:${closed}`);
  });

  for (let k = 1; k < ROUTE_SWAP_STEPS.length; k++) {
    const after = ROUTE_SWAP_STEPS[k - 1];
    it(`a crash after ${after} and a re-delivery from the first step converges without duplicate writes`, async () => {
      const { c, target, memory, newExecutor } = await setup();
      const action = swapAction("primary", "secondary");
      const first = await runSteps(newExecutor(), action, target, memory, { to: k });
      expect(first.every((r) => r.error === undefined)).toBe(true);
      const again = await runSteps(newExecutor(), action, target, memory);
      expect(again.map((r) => r.error?.message)).toEqual(Array(5).fill(undefined));
      expect(again[4]?.outcome?.status).toBeUndefined(); // the egress check ran
      expectSwapped(c);
    });

    it(`a crash after ${after} and a resume at the next step converges without duplicate writes`, async () => {
      const { c, target, memory, newExecutor } = await setup();
      const action = swapAction("primary", "secondary");
      await runSteps(newExecutor(), action, target, memory, { to: k });
      const rest = await runSteps(newExecutor(), action, target, memory, { from: k });
      expect(rest.map((r) => r.error?.message)).toEqual(Array(5 - k).fill(undefined));
      expectSwapped(c);
    });
  }

  it("a crash while waiting for the deletion reports, then a re-delivery, does not delete twice", async () => {
    const { c, target, memory, newExecutor } = await setup();
    const action = swapAction("primary", "secondary");
    const crash = new AbortController();
    const running = runSteps(newExecutor(), action, target, memory, { signal: crash.signal });
    await c.until(() => c.route("primary")?.metadata.deletionTimestamp != null, 5000, "primary being deleted");
    crash.abort();
    const first = await running;
    expect(first.at(-1)).toEqual({ name: "delete-outgoing", aborted: true });
    const again = await runSteps(newExecutor(), action, target, memory);
    expect(again.map((r) => r.error?.message)).toEqual(Array(5).fill(undefined));
    expectSwapped(c);
  });

  it("a crash while waiting for Ready, then a re-delivery, does not apply twice", async () => {
    const { c, target, memory, newExecutor } = await setup();
    const action = swapAction("primary", "secondary");
    const crash = new AbortController();
    const running = runSteps(newExecutor(), action, target, memory, { signal: crash.signal });
    await c.until(() => c.route("secondary") !== undefined, 5000, "secondary created");
    crash.abort();
    const first = await running;
    expect(first.at(-1)).toEqual({ name: "create-incoming", aborted: true });
    const again = await runSteps(newExecutor(), action, target, memory);
    expect(again.map((r) => r.error?.message)).toEqual(Array(5).fill(undefined));
    expectSwapped(c);
  });
});
