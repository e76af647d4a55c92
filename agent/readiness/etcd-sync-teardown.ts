/**
 * Readiness of an `etcd-sync-teardown` target (runbook C) toward side `to`, read only:
 * - `etcd-destination`: the etcd the switch goes to answers a read;
 * - `etcd-sync-lag`: its copy of the heartbeat key is no older than `heartbeat.maxLagSeconds`
 *   (now − the copied value: measured on the destination alone, so it holds when the source is
 *   gone, and it is never smaller than the real lag);
 * - `etcd-source` (advisory): the etcd being left answers; it is what fails, so it never blocks;
 * - `sync-deployment`: the synchronizer the switch stops exists;
 * - `workloads`: every workload the switch restarts exists;
 * - `permissions`: scaling (or deleting) the synchronizer and restarting each workload, by
 *   SelfSubjectAccessReview;
 * - the checks of its `dns` target (agent/readiness/dns-flip.ts), whose flip is one of its steps
 *   (none when `dns` is empty: a plan's etcdSyncTeardown step without `dns` flips no DNS).
 * The full key comparison of the consistency step walks every key on both sides; it is a drill's
 * job, not something to repeat every few minutes.
 * Drift: the DNS record still holds the values of the side a switch would leave.
 */
import * as k8s from "@kubernetes/client-node";
import type { EtcdSyncTeardownTarget, Side } from "../../shared/config.ts";
import { otherSide } from "../../shared/config.ts";
import type { ReadinessCheck } from "../../shared/protocol.ts";
import { createEtcdClient } from "../etcd/client.ts";
import { unlessNotFound } from "../kube-api.ts";
import { permissionsCheck, type WriteAttributes } from "./access.ts";
import { advisory, destination, type Evaluation, probe, type ReadinessContext, type TargetReadiness } from "./check.ts";
import { dnsChecks, dnsDrift } from "./dns-flip.ts";

type Workload = EtcdSyncTeardownTarget["restart"][number];

const PLURAL = { Deployment: "deployments", StatefulSet: "statefulsets", DaemonSet: "daemonsets" } as const;

/** The Kubernetes writes of the stop-sync and restart steps. */
export function etcdSyncTeardownWrites(target: EtcdSyncTeardownTarget): WriteAttributes[] {
  const { sync } = target;
  return [
    sync.action === "delete"
      ? { verb: "delete", group: "apps", resource: "deployments", namespace: sync.namespace, name: sync.name }
      : {
          verb: "patch",
          group: "apps",
          resource: "deployments",
          subresource: "scale",
          namespace: sync.namespace,
          name: sync.name,
        },
    ...target.restart.map((w) => ({
      verb: "patch",
      group: "apps",
      resource: PLURAL[w.kind],
      namespace: w.namespace,
      name: w.name,
    })),
  ];
}

/** The endpoints of each side of the switch toward `to` (failback reads the reverse direction). */
function sides(target: EtcdSyncTeardownTarget, to: Side): { destination: string[]; source: string[] } {
  const { primary, standby } = target.etcd;
  return to === "secondary"
    ? { destination: standby.endpoints, source: primary.endpoints }
    : { destination: primary.endpoints, source: standby.endpoints };
}

/** Reads the heartbeat key (or one key under the first prefix) from `endpoints`. */
async function readEtcd(
  target: EtcdSyncTeardownTarget,
  endpoints: string[],
  timeoutMs: number,
): Promise<{ heartbeat: string | null }> {
  const client = createEtcdClient({ endpoints, tls: target.etcd.tls, callTimeoutMs: timeoutMs });
  try {
    const hb = target.etcd.heartbeat;
    if (hb) return { heartbeat: await client.get(hb.key).string() };
    await client
      .getAll()
      .prefix(target.etcd.prefixes[0] ?? "/")
      .limit(1)
      .keys();
    return { heartbeat: null };
  } finally {
    client.close();
  }
}

async function workloadExists(kc: k8s.KubeConfig, w: Workload): Promise<boolean> {
  const apps = kc.makeApiClient(k8s.AppsV1Api);
  const ref = { namespace: w.namespace, name: w.name };
  const found =
    w.kind === "Deployment"
      ? await unlessNotFound(apps.readNamespacedDeployment(ref))
      : w.kind === "StatefulSet"
        ? await unlessNotFound(apps.readNamespacedStatefulSet(ref))
        : await unlessNotFound(apps.readNamespacedDaemonSet(ref));
  return found !== undefined;
}

const label = (w: { kind: string; namespace: string; name: string }) => `${w.kind} ${w.namespace}/${w.name}`;

/** The etcd checks of the switch toward `to`. */
async function etcdChecks(target: EtcdSyncTeardownTarget, to: Side, ctx: ReadinessContext): Promise<ReadinessCheck[]> {
  const from = otherSide(to);
  const timeoutMs = ctx.timeoutMs ?? 3000;
  const ends = sides(target, to);
  const [dest, src] = await Promise.allSettled([
    readEtcd(target, ends.destination, timeoutMs),
    readEtcd(target, ends.source, timeoutMs),
  ]);
  const reason = (r: PromiseRejectedResult) => (r.reason instanceof Error ? r.reason.message : String(r.reason));
  const checks: ReadinessCheck[] = [
    dest.status === "fulfilled"
      ? destination("etcd-destination", true, `${to} etcd ${ends.destination.join(", ")} answers`)
      : destination(
          "etcd-destination",
          false,
          `${to} etcd ${ends.destination.join(", ")} does not answer: ${reason(dest)}`,
        ),
    src.status === "fulfilled"
      ? advisory("etcd-source", true, `${from} etcd ${ends.source.join(", ")} answers`)
      : advisory(
          "etcd-source",
          false,
          `${from} etcd ${ends.source.join(", ")} does not answer: ${reason(src)} (the switch then needs allowUnverified or force)`,
        ),
  ];
  const hb = target.etcd.heartbeat;
  if (!hb) {
    checks.push(destination("etcd-sync-lag", true, "no heartbeat key configured; the sync lag is not measured"));
  } else if (dest.status === "rejected") {
    checks.push(destination("etcd-sync-lag", false, `not measured: the ${to} etcd does not answer`));
  } else {
    const value = dest.value.heartbeat;
    const ms = value === null ? Number.NaN : Number(value);
    if (!Number.isFinite(ms)) {
      checks.push(
        destination(
          "etcd-sync-lag",
          false,
          value === null
            ? `${hb.key} is absent on the ${to} etcd: is the synchronizer copying it, and does something write it on the ${from}?`
            : `${hb.key} on the ${to} etcd holds ${JSON.stringify(value.slice(0, 40))}, not unix milliseconds`,
        ),
      );
    } else {
      const lag = Math.max(0, (ctx.now() - ms) / 1000);
      const ok = lag <= hb.maxLagSeconds;
      checks.push(
        destination(
          "etcd-sync-lag",
          ok,
          `the ${to} etcd's copy of ${hb.key} is ${lag.toFixed(1)} s old (maximum ${hb.maxLagSeconds} s)${ok ? "" : ": the synchronizer is behind or stopped"}`,
        ),
      );
    }
  }
  return checks;
}

/** Readiness of an etcd-sync-teardown target toward `to`. */
export const etcdSyncTeardownReadiness: TargetReadiness<EtcdSyncTeardownTarget> = async (
  _name,
  target,
  to,
  ctx,
): Promise<Evaluation> => {
  const flipsDns = target.dns !== "";
  const dnsTarget = flipsDns ? ctx.config.targets[target.dns] : undefined;
  const { sync } = target;
  const [etcd, syncCheck, workloads, permissions, dns] = await Promise.all([
    etcdChecks(target, to, ctx),
    probe(
      (ok, detail) => destination("sync-deployment", ok, detail),
      async () => {
        const found = await workloadExists(ctx.kubeConfig, {
          kind: "Deployment",
          namespace: sync.namespace,
          name: sync.name,
        });
        return {
          ok: found,
          detail: found
            ? `synchronizer ${label(sync)} exists`
            : `synchronizer ${label(sync)} not found: the stop-sync step would fail (sync-not-found)`,
        };
      },
    ),
    probe(
      (ok, detail) => destination("workloads", ok, detail),
      async () => {
        const found = await Promise.all(target.restart.map((w) => workloadExists(ctx.kubeConfig, w)));
        const missing = target.restart.filter((_, i) => !found[i]).map(label);
        return missing.length === 0
          ? { ok: true, detail: `${target.restart.length} workload(s) to restart exist` }
          : { ok: false, detail: `not found: ${missing.join(", ")} (the restart step would fail)` };
      },
    ),
    permissionsCheck(ctx.access, etcdSyncTeardownWrites(target)),
    dnsTarget?.kind === "dns-flip"
      ? dnsChecks(dnsTarget, to, ctx)
      : Promise.resolve({
          current: undefined,
          checks: !flipsDns
            ? []
            : [destination("dns-server", false, `dns names ${JSON.stringify(target.dns)}, not a dns-flip target`)],
        }),
  ]);
  return {
    checks: [...etcd, syncCheck, workloads, permissions, ...dns.checks],
    ...(dnsTarget?.kind === "dns-flip" ? { drift: dnsDrift(dnsTarget, otherSide(to), dns.current) } : {}),
  };
};
