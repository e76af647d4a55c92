/**
 * Readiness of a `plan` target (design §11.2, §11.3) toward side `to`: the preflight of every
 * step of the list an action to `to` would run (`failbackSteps` toward the primary when the plan
 * has them, else `steps`; parallel groups flattened), read only. Each check is named
 * `<step name>:<what>`, so the page and Slack name the step.
 * - routeSwap, dnsFlip, etcdSyncTeardown, nodeFence: the executors' own evaluators, on the
 *   settings inline (`<step>:saved-spec`, `<step>:dns-server`, …);
 * - kube: `<step>:object`: the object exists and, with `expect`, is at `expect[to]` already or at
 *   `expect[from]` (the compare-and-swap would succeed), else it names the JSONPath, the expected
 *   and the actual value; `<step>:permissions`: the patch (an apply: also create), by name;
 * - scale: `<step>:object`: the workload's scale can be read; `<step>:permissions`: patch of its
 *   `scale` subresource;
 * - restart: `<step>:object`: every workload exists; `<step>:permissions`: patch of each;
 * - check: `<step>:check`: its probe, once (the kube read's `waitFor`, or the GET with
 *   `expectStatus` and `expectBody`). A check that reads an object an earlier step of the list
 *   writes can only hold after that step: it is shown, advisory;
 * - http: nothing is sent (the request writes). `<step>:env`: every `headersEnv` variable is set
 *   in the agent's environment; `<step>:endpoint`: the URL's host accepts a TCP connection, closed
 *   at once without a byte sent;
 * - wait, approval: no checks: nothing about them can fail before the incident.
 * A step with `cluster` first needs that cluster's API server to answer (`<step>:cluster`); its
 * checks use that cluster's kubeconfig and credentials.
 *
 * Which checks decide `ready`: a step with `ifUnreachable: "skip"` acts on the side being left
 * (the design's example: scaling the old primary down), so its checks are advisory, an unreachable
 * cluster included: shown, never blocking. Every other step acts on the destination; its checks
 * are destination checks, except those its executor's evaluator marks advisory itself.
 *
 * Drift: each kube step with `expect` whose object is no longer at `expect[from]` (the active
 * side), and the drift the executors' evaluators report.
 */
import { connect } from "node:net";
import { AppsV1Api, type KubeConfig } from "@kubernetes/client-node";
import { otherSide, type PlanStep, type PlanTarget, type Side } from "../../shared/config.ts";
import type { ReadinessCheck } from "../../shared/protocol.ts";
import { apiErrorText, unlessNotFound } from "../kube-api.ts";
import { type PlanClusters, planClusters } from "../plan/clusters.ts";
import { executorMemoryPrefix } from "../plan/executor-step.ts";
import { describeMismatch, firstMismatch } from "../plan/jsonpath.ts";
import { KubeObjects, type ObjectRef, refText } from "../plan/kube-object.ts";
import { flattenPlan, objectKey, planList } from "../plan/plan-executor.ts";
import { waitForHolds } from "../plan/wait-for.ts";
import { groupOf, resourceOf } from "../rbac/permissions.ts";
import { kubeAccessReviewer, permissionsCheck, type WriteAttributes } from "./access.ts";
import { advisory, destination, type Evaluation, type ReadinessContext, type TargetReadiness } from "./check.ts";
import { dnsFlipReadiness } from "./dns-flip.ts";
import { etcdSyncTeardownReadiness } from "./etcd-sync-teardown.ts";
import { nodeFenceReadiness } from "./node-fence.ts";
import { routeSwapReadiness } from "./route-swap.ts";

const WORKLOAD_RESOURCE = { Deployment: "deployments", StatefulSet: "statefulsets", DaemonSet: "daemonsets" } as const;

/** The Kubernetes writes of a kube, scale or restart step (the embedded executors name their own). */
export function planStepWrites(step: Pick<PlanStep, "kube" | "scale" | "restart">): WriteAttributes[] {
  if (step.kube) {
    const k = step.kube;
    const object = {
      group: groupOf(k.apiVersion),
      resource: resourceOf(k.kind),
      ...(k.namespace ? { namespace: k.namespace } : {}),
      name: k.name,
    };
    // A server-side apply that would create the object is authorized as create too.
    return [{ ...object, verb: "patch" }, ...(k.patchType === "apply" ? [{ ...object, verb: "create" }] : [])];
  }
  if (step.scale) {
    const s = step.scale;
    return [
      {
        verb: "patch",
        group: "apps",
        resource: WORKLOAD_RESOURCE[s.kind],
        subresource: "scale",
        namespace: s.namespace,
        name: s.name,
      },
    ];
  }
  if (step.restart) {
    return step.restart.workloads.map((w) => ({
      verb: "patch",
      group: "apps",
      resource: WORKLOAD_RESOURCE[w.kind],
      namespace: w.namespace,
      name: w.name,
    }));
  }
  return [];
}

/** The steps an action toward `to` runs, in order, groups flattened. */
export function planStepsToward(plan: PlanTarget, to: Side): PlanStep[] {
  return flattenPlan(planList(plan, { to })).map((f) => f.step);
}

/** What one step's evaluation found (names not yet prefixed). */
interface StepEvaluation {
  checks: ReadinessCheck[];
  drift?: { ok: boolean; detail: string };
}

/** Clusters built once per agent config (the runner's context lives as long as the agent). */
const builtClusters = new WeakMap<object, PlanClusters>();

function clustersOf(ctx: ReadinessContext): PlanClusters {
  if (ctx.clusters) return ctx.clusters;
  let c = builtClusters.get(ctx.config);
  if (!c) {
    c = planClusters(ctx.kubeConfig, ctx.config.clusters ?? {});
    builtClusters.set(ctx.config, c);
  }
  return c;
}

async function kubeStep(step: NonNullable<PlanStep["kube"]>, to: Side, ctx: ReadinessContext): Promise<StepEvaluation> {
  const from = otherSide(to);
  const what = refText(step);
  const permissions = permissionsCheck(ctx.access, planStepWrites({ kube: step }));
  let obj: Awaited<ReturnType<KubeObjects["read"]>>;
  let object: ReadinessCheck;
  let drift: StepEvaluation["drift"];
  try {
    obj = await new KubeObjects(ctx.kubeConfig).read(step);
  } catch (err) {
    object = destination("object", false, err instanceof Error ? err.message : String(err));
    return { checks: [object, await permissions] };
  }
  if (!obj) {
    object = destination("object", false, `${what} does not exist: the step would fail (not-found)`);
    if (step.expect) drift = { ok: false, detail: `${what} does not exist` };
  } else if (!step.expect) {
    object = destination("object", true, `${what} exists; the ${to} patch applies as is`);
  } else {
    const atFrom = firstMismatch(obj, step.expect[from]);
    drift = atFrom
      ? { ok: false, detail: `${what} is no longer at ${from}: ${describeMismatch(atFrom)}` }
      : { ok: true, detail: `${what} is at ${from}` };
    if (!firstMismatch(obj, step.expect[to])) {
      object = destination("object", true, `${what} is already at ${to}; the step would write nothing`);
    } else if (!atFrom) {
      object = destination("object", true, `${what} is at ${from}: the compare-and-swap to ${to} would succeed`);
    } else {
      object = destination(
        "object",
        false,
        `${what} is at neither side: ${describeMismatch(atFrom)} (the ${from} state): the step would fail (precondition-failed)`,
      );
    }
  }
  return { checks: [object, await permissions], ...(drift ? { drift } : {}) };
}

async function scaleStep(
  step: NonNullable<PlanStep["scale"]>,
  to: Side,
  ctx: ReadinessContext,
): Promise<StepEvaluation> {
  const apps = ctx.kubeConfig.makeApiClient(AppsV1Api);
  const ref = { namespace: step.namespace, name: step.name };
  const what = `${step.kind} ${step.namespace}/${step.name}`;
  let object: ReadinessCheck;
  try {
    const scale = await unlessNotFound(
      step.kind === "Deployment" ? apps.readNamespacedDeploymentScale(ref) : apps.readNamespacedStatefulSetScale(ref),
    );
    object = scale
      ? destination(
          "object",
          true,
          `${what} exists (${scale.spec?.replicas ?? 0} replicas; ${to} wants ${step.replicas[to]})`,
        )
      : destination("object", false, `${what} does not exist: the step would fail (not-found)`);
  } catch (err) {
    object = destination("object", false, `could not read ${what}/scale: ${apiErrorText(err)}`);
  }
  return { checks: [object, await permissionsCheck(ctx.access, planStepWrites({ scale: step }))] };
}

async function restartStep(step: NonNullable<PlanStep["restart"]>, ctx: ReadinessContext): Promise<StepEvaluation> {
  const objects = new KubeObjects(ctx.kubeConfig);
  const refs: ObjectRef[] = step.workloads.map((w) => ({ ...w, apiVersion: "apps/v1" }));
  let object: ReadinessCheck;
  try {
    const found = await Promise.all(refs.map((r) => objects.read(r)));
    const missing = refs.filter((_, i) => !found[i]).map(refText);
    object =
      missing.length === 0
        ? destination("object", true, `${refs.length} workload(s) to restart exist`)
        : destination("object", false, `not found: ${missing.join(", ")}: the step would fail (workload-not-found)`);
  } catch (err) {
    object = destination("object", false, err instanceof Error ? err.message : String(err));
  }
  return { checks: [object, await permissionsCheck(ctx.access, planStepWrites({ restart: step }))] };
}

async function checkStep(step: NonNullable<PlanStep["check"]>, ctx: ReadinessContext): Promise<ReadinessCheck> {
  if (step.kube) {
    const ref = step.kube;
    try {
      const seen = waitForHolds(await new KubeObjects(ctx.kubeConfig).read(ref), ref.waitFor, undefined);
      return destination("check", seen.done, `${refText(ref)}: ${seen.detail}`);
    } catch (err) {
      return destination("check", false, err instanceof Error ? err.message : String(err));
    }
  }
  const http = step.http;
  if (!http) return destination("check", true, "nothing to check");
  const line = `GET ${http.url}`;
  try {
    const res = await (ctx.fetch ?? fetch)(http.url, { signal: AbortSignal.timeout(ctx.timeoutMs ?? 3000) });
    const text = await res.text();
    if (res.status !== http.expectStatus) {
      return destination("check", false, `${line} answered ${res.status}, expected ${http.expectStatus}`);
    }
    if (http.expectBody !== undefined && !text.includes(http.expectBody)) {
      return destination("check", false, `${line} answered ${res.status} without ${JSON.stringify(http.expectBody)}`);
    }
    return destination("check", true, `${line} answered ${res.status}`);
  } catch (err) {
    return destination("check", false, `${line}: no answer (${err instanceof Error ? err.message : String(err)})`);
  }
}

/** Whether `host:port` accepts a TCP connection within `timeoutMs`; closed at once, nothing sent. */
export function tcpAnswers(host: string, port: number, timeoutMs: number): Promise<{ ok: boolean; detail: string }> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean, detail: string) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ ok, detail });
    };
    const timer = setTimeout(() => done(false, `no TCP answer within ${timeoutMs} ms`), timeoutMs);
    socket.once("connect", () => done(true, "accepts TCP connections"));
    socket.once("error", (err) => done(false, err.message));
  });
}

async function httpStep(step: NonNullable<PlanStep["http"]>, ctx: ReadinessContext): Promise<StepEvaluation> {
  const missing = Object.values(step.headersEnv).filter((v) => (ctx.env[v] ?? "") === "");
  const env = destination(
    "env",
    missing.length === 0,
    missing.length === 0
      ? Object.keys(step.headersEnv).length === 0
        ? "no headersEnv to read"
        : `${Object.keys(step.headersEnv).length} headersEnv variable(s) set`
      : `environment variable ${missing.join(", ")} is not set in the agent: the step would fail (config) and send nothing`,
  );
  const url = new URL(step.url);
  const port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const answer = await tcpAnswers(host, port, ctx.timeoutMs ?? 3000);
  const endpoint = destination(
    "endpoint",
    answer.ok,
    `${host}:${port} ${answer.ok ? answer.detail : `does not answer: ${answer.detail}`} (no request is sent before the incident)`,
  );
  return { checks: [env, endpoint] };
}

/** The evaluation of one step toward `to`, on the cluster it names. */
async function stepEvaluation(
  name: string,
  step: PlanStep,
  earlier: readonly PlanStep[],
  to: Side,
  ctx: ReadinessContext,
): Promise<StepEvaluation> {
  let c = ctx;
  const checks: ReadinessCheck[] = [];
  if (step.cluster !== undefined) {
    const clusters = clustersOf(ctx);
    let kubeConfig: KubeConfig;
    try {
      kubeConfig = clusters.kubeConfig(step.cluster);
    } catch (err) {
      return { checks: [destination("cluster", false, err instanceof Error ? err.message : String(err))] };
    }
    if (!(await clusters.reachable(step.cluster, ctx.timeoutMs ?? 3000))) {
      const detail = `cluster ${step.cluster} does not answer${step.ifUnreachable === "skip" ? ": the step would be skipped and owed" : ": the step would fail (cluster-unreachable)"}`;
      return { checks: [destination("cluster", false, detail)] };
    }
    checks.push(destination("cluster", true, `cluster ${step.cluster} answers`));
    c = { ...ctx, kubeConfig, access: kubeAccessReviewer(kubeConfig) };
  }
  // The embedded executors keep their memory under a prefix of the plan target's memory.
  const embedded = (target: Parameters<typeof executorMemoryPrefix>[0]): ReadinessContext => {
    const prefix = executorMemoryPrefix(target);
    return { ...c, memory: (t) => ({ get: <T>(key: string) => ctx.memory(t).get<T>(`${prefix}${key}`) }) };
  };
  let found: StepEvaluation = { checks: [] };
  if (step.routeSwap) {
    const t = { kind: "route-swap" as const, ...step.routeSwap };
    found = await routeSwapReadiness(name, t, to, embedded(t));
  } else if (step.dnsFlip) {
    const t = { kind: "dns-flip" as const, ...step.dnsFlip };
    found = await dnsFlipReadiness(name, t, to, embedded(t));
  } else if (step.etcdSyncTeardown) {
    const t = { kind: "etcd-sync-teardown" as const, ...step.etcdSyncTeardown, dns: step.etcdSyncTeardown.dns ?? "" };
    found = await etcdSyncTeardownReadiness(name, t, to, embedded(t));
  } else if (step.nodeFence) {
    const t = { kind: "node-fence" as const, ...step.nodeFence };
    found = await nodeFenceReadiness(name, t, to, embedded(t));
  } else if (step.kube) found = await kubeStep(step.kube, to, c);
  else if (step.scale) found = await scaleStep(step.scale, to, c);
  else if (step.restart) found = await restartStep(step.restart, c);
  else if (step.check) {
    const check = await checkStep(step.check, c);
    const key = objectKey(step);
    const writer = earlier.find((e) => !e.check && key !== undefined && objectKey(e) === key);
    found = {
      checks: [
        writer
          ? advisory(
              "check",
              check.ok,
              `${check.detail} (it reads what step "${writer.name}" writes first, so it holds only after that step; shown, not deciding)`,
            )
          : check,
      ],
    };
  } else if (step.http) found = await httpStep(step.http, c);
  // wait and approval: nothing to check before the incident.
  return { ...found, checks: [...checks, ...found.checks] };
}

/** Readiness of a plan target toward `to`. */
export const planReadiness: TargetReadiness<PlanTarget> = async (name, target, to, ctx): Promise<Evaluation> => {
  const steps = planStepsToward(target, to);
  const results = await Promise.all(
    steps.map(async (step, i) => {
      const found = await stepEvaluation(name, step, steps.slice(0, i), to, ctx);
      const sourceSide = step.ifUnreachable === "skip";
      return {
        step,
        drift: found.drift,
        checks: found.checks.map((c) => ({
          ...c,
          name: `${step.name}:${c.name}`,
          destination: c.destination && !sourceSide,
        })),
      };
    }),
  );
  const drifts = results.flatMap((r) => (r.drift ? [{ step: r.step.name, ...r.drift }] : []));
  const drifted = drifts.filter((d) => !d.ok);
  const shown = drifted.length ? drifted : drifts;
  return {
    checks: results.flatMap((r) => r.checks),
    ...(drifts.length
      ? { drift: { ok: drifted.length === 0, detail: shown.map((d) => `${d.step}: ${d.detail}`).join("; ") } }
      : {}),
  };
};
