/**
 * Readiness of a `route-swap` target (runbook A) toward side `to`: what the executor's preflight
 * would find, read only. Every check is a destination check: both StaticRoutes and the operator
 * live in the one cluster this agent is in, and it is a gateway that fails, not the cluster.
 * - `operator-ready`: the operator DaemonSet is fully ready (a node without it keeps stale routes);
 * - `routes-valid`: both configured specs are valid and name different StaticRoutes;
 * - `saved-spec`: a spec saved for `to` by an earlier switch, which create-incoming would use,
 *   still has the config's name and gateway (else the step fails `saved-spec-mismatch`);
 * - `routes-state`: the outgoing route is there to delete, or the switch is already done;
 * - `permissions`: delete of the outgoing route, apply (patch + create) of the incoming one, and
 *   the update of the target's memory ConfigMap, by SelfSubjectAccessReview.
 * Drift: the active side's StaticRoute is present with the spec of the config (or the one saved).
 */
import * as k8s from "@kubernetes/client-node";
import { otherSide, type RouteSwapTarget } from "../../shared/config.ts";
import {
  SavedRouteSchema,
  STATIC_ROUTE,
  type StaticRouteObject,
  StaticRouteObjectSchema,
  savedRouteKey,
  specProblems,
} from "../executors/route-swap.ts";
import { labelSelector, unlessNotFound } from "../kube-api.ts";
import { configMapName } from "../memory.ts";
import { permissionsCheck, type WriteAttributes } from "./access.ts";
import { destination, type Evaluation, probe, type TargetReadiness } from "./check.ts";

/** The Kubernetes writes a switch toward `to` makes (each asked as a SelfSubjectAccessReview). */
export function routeSwapWrites(
  name: string,
  target: RouteSwapTarget,
  to: "primary" | "secondary",
  agentNamespace: string,
): WriteAttributes[] {
  const route = { group: STATIC_ROUTE.group, resource: STATIC_ROUTE.plural };
  return [
    { ...route, verb: "delete", name: target.routes[otherSide(to)].name },
    { ...route, verb: "patch", name: target.routes[to].name },
    // A server-side apply that creates the object is authorized as `create` as well.
    { ...route, verb: "create", name: target.routes[to].name },
    { verb: "update", group: "", resource: "configmaps", namespace: agentNamespace, name: configMapName(name) },
  ];
}

function sameSpec(obj: StaticRouteObject, want: { destinations?: unknown; gateway?: unknown }): boolean {
  const wanted = Array.isArray(want.destinations) ? want.destinations.map(String) : [];
  const have = new Set(obj.spec.destinations);
  return obj.spec.gateway === want.gateway && have.size === new Set(wanted).size && wanted.every((d) => have.has(d));
}

/** Readiness of a route-swap target toward `to`. */
export const routeSwapReadiness: TargetReadiness<RouteSwapTarget> = async (
  name,
  target,
  to,
  ctx,
): Promise<Evaluation> => {
  const from = otherSide(to);
  const custom = ctx.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
  const getRoute = async (routeName: string): Promise<StaticRouteObject | undefined> => {
    const raw: unknown = await unlessNotFound(custom.getClusterCustomObject({ ...STATIC_ROUTE, name: routeName }));
    return raw === undefined ? undefined : StaticRouteObjectSchema.parse(raw);
  };
  const memory = ctx.memory(name);
  const ns = target.operator.namespace;
  const outgoing = target.routes[from];
  const incoming = target.routes[to];

  const operator = probe(
    (ok, detail) => destination("operator-ready", ok, detail),
    async () => {
      const apps = ctx.kubeConfig.makeApiClient(k8s.AppsV1Api);
      const ds = await unlessNotFound(apps.readNamespacedDaemonSet({ namespace: ns, name: target.operator.daemonSet }));
      if (!ds) return { ok: false, detail: `operator DaemonSet ${ns}/${target.operator.daemonSet} not found` };
      const desired = ds.status?.desiredNumberScheduled ?? 0;
      const ready = ds.status?.numberReady ?? 0;
      const selector = labelSelector(ds.spec?.selector.matchLabels ?? {});
      const pods = await ctx.kubeConfig
        .makeApiClient(k8s.CoreV1Api)
        .listNamespacedPod({ namespace: ns, ...(selector ? { labelSelector: selector } : {}) });
      const notReady = pods.items
        .filter((p) => !p.metadata?.deletionTimestamp)
        .filter((p) => !(p.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True"))
        .map((p) => `${p.metadata?.name ?? "?"} on ${p.spec?.nodeName ?? "(unscheduled)"}`);
      const ok = desired > 0 && ready === desired && notReady.length === 0;
      return {
        ok,
        detail: ok
          ? `operator DaemonSet ${ns}/${target.operator.daemonSet} ${ready}/${desired} ready`
          : `operator DaemonSet ${ns}/${target.operator.daemonSet} is not fully ready (${ready}/${desired})${notReady.length ? `; NotReady: ${notReady.join(", ")}` : ""}`,
      };
    },
  );

  const problems = [...specProblems(`routes.${from}`, outgoing), ...specProblems(`routes.${to}`, incoming)];
  if (outgoing.name === incoming.name) problems.push(`both sides use the StaticRoute name ${outgoing.name}`);
  const valid = destination(
    "routes-valid",
    problems.length === 0,
    problems.length === 0 ? "both configured StaticRoute specs are valid" : problems.join("; "),
  );

  const saved = probe(
    (ok, detail) => destination("saved-spec", ok, detail),
    async () => {
      const raw = await memory.get(savedRouteKey(to));
      if (raw === undefined) return { ok: true, detail: `no spec saved for ${to}; the config's is created` };
      const s = SavedRouteSchema.safeParse(raw);
      if (!s.success) return { ok: false, detail: `the spec saved for ${to} is unreadable: ${s.error.message}` };
      const gateway = s.data.spec.gateway;
      const mismatch = s.data.name !== incoming.name || gateway !== incoming.gateway;
      const invalid = specProblems(`saved ${to} spec`, s.data.spec);
      if (mismatch) {
        return {
          ok: false,
          detail: `the ${to} spec saved by ${s.data.actionId} (StaticRoute ${JSON.stringify(s.data.name)}, gateway ${JSON.stringify(gateway)}) does not match routes.${to} (StaticRoute ${JSON.stringify(incoming.name)}, gateway ${JSON.stringify(incoming.gateway)}); fix the config, or remove the key ${savedRouteKey(to)} from memory.json in the ConfigMap ${configMapName(name)}`,
        };
      }
      if (invalid.length) return { ok: false, detail: invalid.join("; ") };
      return { ok: true, detail: `the ${to} spec saved by ${s.data.actionId} matches routes.${to}` };
    },
  );

  const routes = Promise.all([getRoute(outgoing.name), getRoute(incoming.name)]);
  const state = probe(
    (ok, detail) => destination("routes-state", ok, detail),
    async () => {
      const [out, inc] = await routes;
      if (out && out.metadata.deletionTimestamp == null) {
        return {
          ok: true,
          detail: `StaticRoute ${outgoing.name} (${from}) is present; a switch replaces it with ${incoming.name}`,
        };
      }
      if (inc && inc.metadata.deletionTimestamp == null && sameSpec(inc, incoming)) {
        return { ok: true, detail: `StaticRoute ${incoming.name} (${to}) is already in place` };
      }
      return {
        ok: false,
        detail: `StaticRoute ${outgoing.name} is ${out ? "being deleted" : "absent"} and ${incoming.name} is ${inc ? "not the configured spec" : "absent"}: the switch would stop at preflight (unexpected-state)`,
      };
    },
  );

  const checks = await Promise.all([
    operator,
    valid,
    saved,
    state,
    permissionsCheck(ctx.access, routeSwapWrites(name, target, to, ctx.config.namespace)),
  ]);

  // Drift: the side active before the switch still carries its route as configured (or as saved).
  let drift: Evaluation["drift"];
  try {
    const [out] = await routes;
    const savedFrom = SavedRouteSchema.safeParse(await memory.get(savedRouteKey(from)));
    const wanted = savedFrom.success ? savedFrom.data.spec : outgoing;
    drift =
      out && out.metadata.deletionTimestamp == null
        ? sameSpec(out, wanted)
          ? { ok: true, detail: `StaticRoute ${outgoing.name} matches its spec` }
          : {
              ok: false,
              detail: `StaticRoute ${outgoing.name} has ${out.spec.destinations.length} destination(s) via ${out.spec.gateway}, not the spec of routes.${from}`,
            }
        : { ok: false, detail: `StaticRoute ${outgoing.name} (${from}) is ${out ? "being deleted" : "absent"}` };
  } catch (err) {
    drift = { ok: false, detail: `could not read StaticRoute ${outgoing.name}: ${String(err)}` };
  }
  return { checks, drift };
};
