/**
 * Benchmark: the Gateway API example plan (examples/plans/gateway-api-shift.json), a failover from
 * dispatch (the runner accepting the action) to its final report, in the sandbox: the fake API
 * over HTTP, the simulated workload controllers (pods Ready 20 ms after they are asked for), a
 * load balancer receiver for the http step, the real clock. Median of several runs, each on a
 * fresh cluster.
 * Baseline, in the same run: the same writes made directly with client-node against the same
 * kind of fake API (scale up, wait until Ready, JSON patch of the HTTPRoute, the PUT, scale down,
 * wait), as a hand-written script would, with the same poll interval. The ratio is what the
 * plan's guarantees (reads for compare-and-swap, durable memory, reports) cost in time.
 * Run with `node bench/plan.ts [runs]`; `run()` returns the figures.
 */
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import * as k8s from "@kubernetes/client-node";
import type { PlanClusters } from "../agent/plan/clusters.ts";
import { type PlanCluster, planAction, planAgent, startPlanCluster } from "../test/support/plan-sandbox.ts";

const EXAMPLES = join(import.meta.dirname, "../examples/plans");
const POLL_MS = 20;

export interface PlanBenchFigures {
  runs: number;
  /** Dispatch → final report of the plan's failover, median, ms. */
  medianMs: number;
  maxMs: number;
  /** The same writes and waits with client-node directly, median, ms. */
  baselineMedianMs: number;
  failures: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
};

const realClock = {
  now: () => Date.now(),
  sleep: (ms: number, signal?: AbortSignal) =>
    new Promise<void>((resolve, reject) => {
      const t = setTimeout(resolve, ms);
      signal?.addEventListener("abort", () => {
        clearTimeout(t);
        reject(signal.reason);
      });
    }),
};

async function freshCluster(): Promise<PlanCluster> {
  const c = await startPlanCluster();
  c.apply(join(EXAMPLES, "gateway-api-objects.yaml"));
  await c.controllers.settled();
  return c;
}

async function planRun(lbUrl: string): Promise<{ ms: number; ok: boolean }> {
  const c = await freshCluster();
  try {
    const config = JSON.parse(
      readFileSync(join(EXAMPLES, "gateway-api-shift.json"), "utf8").replaceAll("http://127.0.0.1:18089", lbUrl),
    );
    const own = c.api.kubeConfig();
    const clusters: PlanClusters = { kubeConfig: () => own, reachable: async () => true };
    const agent = planAgent({
      config,
      kubeConfig: own,
      clusters,
      clock: realClock,
      pollMs: POLL_MS,
      env: { LB_API_TOKEN: "Bearer bench" },
    });
    const request = planAction({ id: "shop-web:1" });
    const start = performance.now();
    await agent.runner.submit(request);
    const report = await agent.waitForReport((r) => r.actionId === request.id && r.status !== "running", 60_000);
    return { ms: performance.now() - start, ok: report.status === "succeeded" };
  } finally {
    await c.close();
  }
}

async function baselineRun(lbUrl: string): Promise<number> {
  const c = await freshCluster();
  try {
    const kc = c.api.kubeConfig();
    const apps = kc.makeApiClient(k8s.AppsV1Api);
    const custom = kc.makeApiClient(k8s.CustomObjectsApi);
    const merge = k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch);
    const scale = async (name: string, replicas: number) => {
      await apps.patchNamespacedDeploymentScale({ namespace: "shop", name, body: { spec: { replicas } } }, merge);
      for (;;) {
        const d = await apps.readNamespacedDeployment({ namespace: "shop", name });
        if ((d.status?.readyReplicas ?? 0) === replicas && (d.status?.replicas ?? 0) === replicas) return;
        await realClock.sleep(POLL_MS);
      }
    };
    const start = performance.now();
    await scale("web-secondary", 3);
    await custom.patchNamespacedCustomObject(
      {
        group: "gateway.networking.k8s.io",
        version: "v1",
        namespace: "shop",
        plural: "httproutes",
        name: "web",
        body: [
          { op: "replace", path: "/spec/rules/0/backendRefs/0/weight", value: 0 },
          { op: "replace", path: "/spec/rules/0/backendRefs/1/weight", value: 100 },
        ],
      },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.JsonPatch),
    );
    await fetch(`${lbUrl}/v1/pools/shop-web/active`, {
      method: "PUT",
      headers: { authorization: "Bearer bench", "content-type": "application/json" },
      body: JSON.stringify({ pool: "dc-2" }),
    });
    await scale("web-primary", 0);
    return performance.now() - start;
  } finally {
    await c.close();
  }
}

/** Runs `runs` plan failovers and as many baselines, each on a fresh cluster, and returns the figures. */
export async function run(runs = 5): Promise<PlanBenchFigures> {
  const lb = createServer((req, res) => {
    req.resume();
    req.on("end", () => res.writeHead(200, { "content-type": "application/json" }).end("{}"));
  });
  await new Promise<void>((r) => lb.listen(0, "127.0.0.1", () => r()));
  const lbUrl = `http://127.0.0.1:${(lb.address() as AddressInfo).port}`;
  try {
    const plan: number[] = [];
    const baseline: number[] = [];
    let failures = 0;
    for (let i = 0; i < runs; i++) {
      const r = await planRun(lbUrl);
      if (r.ok) plan.push(r.ms);
      else failures++;
      baseline.push(await baselineRun(lbUrl));
    }
    return {
      runs,
      medianMs: Math.round(median(plan)),
      maxMs: Math.round(Math.max(0, ...plan)),
      baselineMedianMs: Math.round(median(baseline)),
      failures,
    };
  } finally {
    await new Promise<void>((r) => lb.close(() => r()));
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  run(Number(process.argv[2] ?? 5)).then(
    (f) => console.log(JSON.stringify(f, null, 2)),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
