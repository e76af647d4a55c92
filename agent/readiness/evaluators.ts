/**
 * Which evaluator reads which target kind. A kind without one is reported not ready with a check
 * that says so, never silently ready. A plan (design §11.2) evaluates each of its steps
 * (agent/readiness/plan.ts): the four executors as steps carry the same settings inline, so their
 * evaluators here serve both.
 */
import type { AgentTarget } from "../../shared/config.ts";
import type { TargetReadiness } from "./check.ts";
import { dnsFlipReadiness } from "./dns-flip.ts";
import { etcdSyncTeardownReadiness } from "./etcd-sync-teardown.ts";
import { nodeFenceReadiness } from "./node-fence.ts";
import { planReadiness } from "./plan.ts";
import { routeSwapReadiness } from "./route-swap.ts";

/** Evaluators by target kind. */
export type ReadinessRegistry = ReadonlyMap<string, TargetReadiness>;

function entry<T extends AgentTarget>(kind: T["kind"], evaluate: TargetReadiness<T>): [string, TargetReadiness] {
  return [kind, evaluate as TargetReadiness];
}

/** The evaluators of the built-in executors. */
export const defaultEvaluators: ReadinessRegistry = new Map([
  entry("route-swap", routeSwapReadiness),
  entry("dns-flip", dnsFlipReadiness),
  entry("etcd-sync-teardown", etcdSyncTeardownReadiness),
  entry("node-fence", nodeFenceReadiness),
  entry("plan", planReadiness),
]);
