/**
 * Readiness of a `node-fence` target (runbook D) toward side `to`: what the preflight of a
 * failover into the `to` group would find, read only.
 * - `destination-nodes`: the `to` group has a Ready, schedulable, unfenced node for the
 *   workloads to move to (else the failover stops at preflight, `no-destination`);
 * - `fence-fraction`: fencing the other group keeps the tainted nodes within `maxFenceFraction`;
 * - `workloads`: every workload the failover waits for exists;
 * - `permissions`: the cordon and taint patches of the other group's nodes, by
 *   SelfSubjectAccessReview;
 * - `source-nodes` (advisory): the state of the group being left. Its nodes are normally Ready
 *   (a failover waits until they have been NotReady for `notReadySeconds`); it is what fails, so
 *   it never blocks.
 * Drift: the active group carries no out-of-service taint and no cordon.
 */
import * as k8s from "@kubernetes/client-node";
import { type NodeFenceTarget, otherSide } from "../../shared/config.ts";
import { OUT_OF_SERVICE_TAINT } from "../executors/node-fence.ts";
import { unlessNotFound } from "../kube-api.ts";
import { permissionsCheck } from "./access.ts";
import { advisory, destination, type Evaluation, type TargetReadiness } from "./check.ts";

const isReady = (n: k8s.V1Node) => (n.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True");
const isFenced = (n: k8s.V1Node) => (n.spec?.taints ?? []).some((t) => t.key === OUT_OF_SERVICE_TAINT.key);
const nameOf = (n: k8s.V1Node) => n.metadata?.name ?? "?";
const stateOf = (n: k8s.V1Node) =>
  `${nameOf(n)} ${isReady(n) ? "Ready" : "NotReady"}${n.spec?.unschedulable ? ", cordoned" : ""}${isFenced(n) ? ", fenced" : ""}`;
const list = (names: string[]) => (names.length ? names.join(", ") : "(none)");

/** Readiness of a node-fence target toward `to`. */
export const nodeFenceReadiness: TargetReadiness<NodeFenceTarget> = async (
  _name,
  target,
  to,
  ctx,
): Promise<Evaluation> => {
  const from = otherSide(to);
  const core = ctx.kubeConfig.makeApiClient(k8s.CoreV1Api);
  const apps = ctx.kubeConfig.makeApiClient(k8s.AppsV1Api);
  const incomingSel = target.nodes[to].selector;
  const outgoingSel = target.nodes[from].selector;
  let all: k8s.V1Node[];
  let incoming: k8s.V1Node[];
  let outgoing: k8s.V1Node[];
  try {
    [all, incoming, outgoing] = await Promise.all([
      core.listNode().then((r) => r.items),
      core.listNode({ labelSelector: incomingSel }).then((r) => r.items),
      core.listNode({ labelSelector: outgoingSel }).then((r) => r.items),
    ]);
  } catch (err) {
    const detail = `could not list nodes: ${err instanceof Error ? err.message : String(err)}`;
    return { checks: [destination("destination-nodes", false, detail)], drift: { ok: false, detail } };
  }

  const usable = incoming.filter((n) => isReady(n) && !n.spec?.unschedulable && !isFenced(n));
  const destinationNodes = destination(
    "destination-nodes",
    usable.length > 0,
    usable.length > 0
      ? `${usable.length}/${incoming.length} node(s) of the ${to} group (${incomingSel}) Ready and schedulable`
      : `no Ready, schedulable node in the ${to} group (${incomingSel}): ${list(incoming.map(stateOf))}; a failover would leave the workloads nowhere to go`,
  );

  const fencedAfter = new Set([...all.filter(isFenced).map(nameOf), ...outgoing.map(nameOf)]);
  const fraction = fencedAfter.size / Math.max(1, all.length);
  const fenceFraction = destination(
    "fence-fraction",
    outgoing.length > 0 && fraction <= target.maxFenceFraction,
    outgoing.length === 0
      ? `the ${from} selector ${outgoingSel} matches no node: there is nothing to fence`
      : `fencing the ${from} group would taint ${fencedAfter.size} of ${all.length} nodes (maxFenceFraction ${target.maxFenceFraction})`,
  );

  let workloads: ReturnType<typeof destination>;
  try {
    const found = await Promise.all(
      target.workloads.map((w) => {
        const ref = { namespace: w.namespace, name: w.name };
        return w.kind === "Deployment"
          ? unlessNotFound(apps.readNamespacedDeployment(ref))
          : unlessNotFound(apps.readNamespacedStatefulSet(ref));
      }),
    );
    const missing = target.workloads
      .filter((_, i) => found[i] === undefined)
      .map((w) => `${w.kind} ${w.namespace}/${w.name}`);
    workloads = destination(
      "workloads",
      missing.length === 0,
      missing.length === 0 ? `${target.workloads.length} workload(s) exist` : `not found: ${missing.join(", ")}`,
    );
  } catch (err) {
    workloads = destination("workloads", false, err instanceof Error ? err.message : String(err));
  }

  const permissions = await permissionsCheck(
    ctx.access,
    outgoing.map((n) => ({ verb: "patch", group: "", resource: "nodes", name: nameOf(n) })),
  );

  const source = advisory(
    "source-nodes",
    outgoing.length > 0,
    outgoing.length > 0
      ? `${from} group (${outgoingSel}): ${list(outgoing.map(stateOf))}; a failover fences them only once they have been NotReady for ${target.notReadySeconds} s`
      : `the ${from} selector ${outgoingSel} matches no node`,
  );

  const touched = outgoing.filter((n) => isFenced(n) || n.spec?.unschedulable);
  const drift: Evaluation["drift"] =
    touched.length === 0
      ? { ok: true, detail: `no node of the ${from} group is fenced or cordoned` }
      : { ok: false, detail: `fenced or cordoned in the ${from} group: ${list(touched.map(stateOf))}` };

  return { checks: [destinationNodes, fenceFraction, workloads, permissions, source], drift };
};
