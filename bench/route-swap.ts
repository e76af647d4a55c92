/**
 * Benchmark: route swaps against simulated k8s-staticroute-operator pods that take ~200 ms per
 * handler run (3 nodes, fake Kubernetes API over real HTTP, the real client), alternating
 * primary → secondary → primary. Prints median and p99 next to runbook A's fixed 30–60 s wait.
 * Run with `node bench/route-swap.ts [swaps] [destinations]`; `run()` returns the figures.
 */
import { pathToFileURL } from "node:url";
import { createRouteSwapExecutor } from "../agent/executors/route-swap.ts";
import type { Side } from "../shared/config.ts";
import {
  destinations,
  MapMemory,
  routeSwapTarget,
  runSteps,
  startSwapCluster,
  swapAction,
} from "../test/support/route-swap-cluster.ts";
import { percentile } from "./percentile.ts";

export interface RouteSwapBenchFigures {
  swaps: number;
  destinations: number;
  nodes: number;
  operatorDelayMs: number;
  /** Whole executor (all five steps), ms. */
  medianMs: number;
  p99Ms: number;
  maxMs: number;
  /** The runbook's fixed wait (step 3 alone) divided by our median for the whole swap. */
  speedupVsRunbook: { at30s: number; at60s: number };
  failures: number;
}

/** Runs `swaps` alternating swaps and returns timing figures. */
export async function run(swaps = 20, destinationCount = 1, operatorDelayMs = 200): Promise<RouteSwapBenchFigures> {
  const cluster = await startSwapCluster({ delayMs: operatorDelayMs });
  try {
    const dests = destinationCount === 1 ? ["34.160.111.145"] : destinations(destinationCount);
    await cluster.seedRoute("primary", dests, "10.116.0.4");
    const target = routeSwapTarget({ settleSeconds: 30 }, dests);
    const executor = createRouteSwapExecutor({ kubeConfig: cluster.api.kubeConfig(), pollMs: 20 });
    const memory = new MapMemory();
    const times: number[] = [];
    let failures = 0;
    let from: Side = "primary";
    for (let i = 0; i < swaps; i++) {
      const to: Side = from === "primary" ? "secondary" : "primary";
      const started = performance.now();
      const runs = await runSteps(executor, swapAction(from, to), target, memory);
      times.push(performance.now() - started);
      if (runs.some((r) => r.error)) failures++;
      from = to;
    }
    const sorted = [...times].sort((a, b) => a - b);
    const medianMs = Math.round(percentile(sorted, 50));
    return {
      swaps,
      destinations: dests.length,
      nodes: cluster.nodes.length,
      operatorDelayMs,
      medianMs,
      p99Ms: Math.round(percentile(sorted, 99)),
      maxMs: Math.round(sorted.at(-1) ?? Number.NaN),
      speedupVsRunbook: {
        at30s: Math.round((30_000 / medianMs) * 10) / 10,
        at60s: Math.round((60_000 / medianMs) * 10) / 10,
      },
      failures,
    };
  } finally {
    await cluster.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const swaps = Number(process.argv[2] ?? 20);
  const dests = Number(process.argv[3] ?? 1);
  const f = await run(swaps, dests);
  console.log(JSON.stringify(f, null, 2));
  console.log(
    `route-swap: median ${f.medianMs} ms, p99 ${f.p99Ms} ms over ${f.swaps} swaps (${f.destinations} destinations, ${f.nodes} nodes, operator ${f.operatorDelayMs} ms/run); ` +
      `runbook A waits a fixed 30–60 s → ${f.speedupVsRunbook.at30s}–${f.speedupVsRunbook.at60s}× faster; failures: ${f.failures}`,
  );
}
