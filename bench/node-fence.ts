/**
 * Benchmark: node-fence in the sandbox (fake Kubernetes API over real HTTP, the real client, the
 * simulated control plane with a 1 s pod start and a 200 ms volume attach): the dc group's three
 * nodes are NotReady, and the time is taken from the fence decision (the action's first step) to
 * the postgres StatefulSet and the web Deployment Ready again on the cloud nodes. The baseline is
 * Kubernetes alone: pods on a NotReady node are evicted only after the 300 s `tolerationSeconds`
 * of `node.kubernetes.io/not-ready` / `unreachable`, and a StatefulSet pod whose volume is attached
 * to the lost node is not rescheduled at all (it stays Terminating and the volume stays attached).
 * Run with `node bench/node-fence.ts [runs]`; `run()` returns the figures.
 */
import { pathToFileURL } from "node:url";
import { createNodeFenceExecutor, DEFAULT_EVICTION_SECONDS } from "../agent/executors/node-fence.ts";
import { MapMemory } from "../test/support/map-memory.ts";
import { DC, fenceAction, fenceTarget, runFenceSteps, startFenceCluster } from "../test/support/node-fence-cluster.ts";
import { percentile } from "./percentile.ts";

export interface NodeFenceBenchFigures {
  runs: number;
  nodes: number;
  podReadyDelayMs: number;
  attachDelayMs: number;
  /** Fence decision → workloads Ready, ms. */
  medianMs: number;
  maxMs: number;
  baselineSeconds: number;
  failures: number;
}

/** Runs `runs` fences, each on a fresh sandbox, and returns timing figures. */
export async function run(runs = 3, podReadyDelayMs = 1000, attachDelayMs = 200): Promise<NodeFenceBenchFigures> {
  const times: number[] = [];
  let failures = 0;
  for (let i = 0; i < runs; i++) {
    const cluster = await startFenceCluster({ podReadyDelayMs, attachDelayMs });
    try {
      const executor = createNodeFenceExecutor({ kubeConfig: cluster.sandbox.kubeConfig, pollMs: 50 });
      cluster.setReady(DC, false);
      await cluster.settled();
      const started = performance.now();
      // The API's lastTransitionTime is real time: the clock runs two minutes ahead (past notReadySeconds).
      const steps = await runFenceSteps(
        executor,
        fenceAction("failover"),
        fenceTarget({ settleSeconds: 60 }),
        new MapMemory(),
        {
          skewMs: 120_000,
        },
      );
      times.push(performance.now() - started);
      if (steps.length !== 5 || steps.some((s) => s.error)) failures++;
    } finally {
      await cluster.close();
    }
  }
  const sorted = [...times].sort((a, b) => a - b);
  return {
    runs,
    nodes: 6,
    podReadyDelayMs,
    attachDelayMs,
    medianMs: Math.round(percentile(sorted, 50)),
    maxMs: Math.round(sorted.at(-1) ?? Number.NaN),
    baselineSeconds: DEFAULT_EVICTION_SECONDS,
    failures,
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const f = await run(Number(process.argv[2] ?? 3));
  console.log(JSON.stringify(f, null, 2));
}
