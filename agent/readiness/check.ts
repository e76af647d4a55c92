/**
 * What a readiness evaluator is (design §11.3): for one target and the side a switch would go to,
 * a read-only list of named checks, each `{name, ok, destination, detail}`, and whether the side
 * that is active now still matches its state (drift). Only destination checks decide `ready`;
 * a check that reads the side being left is advisory, since that side is what fails.
 *
 * One evaluator per executor kind (agent/readiness/<kind>.ts), registered in
 * agent/readiness/evaluators.ts. Evaluators never write: Kubernetes is read and asked
 * SelfSubjectAccessReviews, DNS gets a prerequisite-only UPDATE, etcd is read.
 */
import type { KubeConfig } from "@kubernetes/client-node";
import type { AgentConfig, AgentTarget, Side } from "../../shared/config.ts";
import type { ReadinessCheck, SideReadiness } from "../../shared/protocol.ts";
import type { DurableMemory } from "../executor.ts";
import { apiErrorText } from "../kube-api.ts";
import type { PlanClusters } from "../plan/clusters.ts";
import type { AccessReviewer } from "./access.ts";

/** What every evaluator may use; all of it reads. */
export interface ReadinessContext {
  kubeConfig: KubeConfig;
  /**
   * The agent config: its namespace (memory ConfigMaps), targets (an etcd-sync-teardown names its
   * dns-flip) and the `clusters` a plan's steps may name.
   */
  config: Pick<AgentConfig, "targets" | "namespace"> & Partial<Pick<AgentConfig, "clusters">>;
  /** Where secrets named in the config come from (TSIG, DNS API tokens). */
  env: Record<string, string | undefined>;
  /** Unix milliseconds. */
  now(): number;
  /** The executors' durable memory, read only (route-swap's saved specs). */
  memory(target: string): Pick<DurableMemory, "get">;
  /** SelfSubjectAccessReviews, for the writes a step would make. */
  access: AccessReviewer;
  /** The clusters a plan's steps name. @default built from `config.clusters` and `kubeConfig` */
  clusters?: PlanClusters;
  /** For the HTTP DNS providers. @default globalThis.fetch */
  fetch?: typeof fetch;
  /** Bound on one probe (a DNS exchange, an etcd call). @default 3000 */
  timeoutMs?: number;
}

/** One evaluation of one target toward one side. */
export interface Evaluation {
  checks: ReadinessCheck[];
  drift?: NonNullable<SideReadiness["drift"]>;
}

/** Evaluates `target` toward side `to` (the switch would come from the other side). */
export type TargetReadiness<T extends AgentTarget = AgentTarget> = (
  name: string,
  target: T,
  to: Side,
  ctx: ReadinessContext,
) => Promise<Evaluation>;

/** A destination check: about the side the switch goes to; it decides `ready`. */
export function destination(name: string, ok: boolean, detail: string): ReadinessCheck {
  return { name, ok, destination: true, detail };
}

/** An advisory check: it reads the side being left; shown, never blocking. */
export function advisory(name: string, ok: boolean, detail: string): ReadinessCheck {
  return { name, ok, destination: false, detail };
}

/** Runs a probe; a throw becomes a failing check that names the error (never a failed round). */
export async function probe(
  make: (ok: boolean, detail: string) => ReadinessCheck,
  run: () => Promise<{ ok: boolean; detail: string }>,
): Promise<ReadinessCheck> {
  try {
    const r = await run();
    return make(r.ok, r.detail);
  } catch (err) {
    return make(false, apiErrorText(err));
  }
}

/** `ready`: every destination check passed (advisory ones do not count). */
export function isReady(checks: readonly ReadinessCheck[]): boolean {
  return checks.every((c) => !c.destination || c.ok);
}
