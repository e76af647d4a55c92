/**
 * `scale` (design §11.2): a Deployment or StatefulSet to the side's replica count through the
 * `scale` subresource (so RBAC grants `…/scale`, never a patch of the workload's pod template),
 * then waiting until that many pods are Ready for the current generation.
 */
import * as k8s from "@kubernetes/client-node";
import type { z } from "zod";
import type { ScaleStepSchema } from "../../shared/config.ts";
import { type StepContext, StepError, type StepOutcome } from "../executor.ts";
import { apiErrorText, dryRunOption, unlessNotFound } from "../kube-api.ts";
import { waitUntil } from "./wait-until.ts";

export type ScaleStep = z.infer<typeof ScaleStepSchema>;

export interface ScaleStepRun {
  ctx: StepContext;
  step: ScaleStep;
  kubeConfig: k8s.KubeConfig;
  dryRun: boolean;
  timeoutMs: number;
  pollMs: number;
}

const label = (s: ScaleStep) => `${s.kind} ${s.namespace}/${s.name}`;

async function kube<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw new StepError("kubernetes", `${what}: ${apiErrorText(err)}`);
  }
}

/** Runs a `scale` step toward `ctx.action.to`. */
export async function runScaleStep(run: ScaleStepRun): Promise<StepOutcome> {
  const { ctx, step, dryRun } = run;
  const apps = run.kubeConfig.makeApiClient(k8s.AppsV1Api);
  const want = step.replicas[ctx.action.to];
  const ref = { namespace: step.namespace, name: step.name };
  const what = label(step);
  const readScale = () =>
    unlessNotFound(
      step.kind === "Deployment" ? apps.readNamespacedDeploymentScale(ref) : apps.readNamespacedStatefulSetScale(ref),
    );
  const scale = await kube(`read ${what}/scale`, readScale);
  if (!scale) throw new StepError("not-found", `${what} does not exist`);
  const had = scale.spec?.replicas ?? 0;
  let did: string;
  if (had === want) did = `already at ${want} replicas; nothing written`;
  else {
    const request = { ...ref, body: { spec: { replicas: want } }, ...dryRunOption(dryRun) };
    const header = k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch);
    await kube(`scale ${what}`, () =>
      step.kind === "Deployment"
        ? apps.patchNamespacedDeploymentScale(request, header)
        : apps.patchNamespacedStatefulSetScale(request, header),
    );
    if (dryRun)
      return {
        detail: `dry run: ${what} ${had} → ${want} replicas accepted with dryRun=All; readiness wait skipped (dry run)`,
      };
    did = `scaled ${had} → ${want}`;
  }
  const readWorkload = () =>
    unlessNotFound<k8s.V1Deployment | k8s.V1StatefulSet>(
      step.kind === "Deployment" ? apps.readNamespacedDeployment(ref) : apps.readNamespacedStatefulSet(ref),
    );
  const seen = await waitUntil(
    ctx,
    { pollMs: run.pollMs, timeoutMs: run.timeoutMs, code: "wait-timeout", what: `${what} ${want} Ready` },
    async () => {
      const w = await kube(`read ${what}`, readWorkload);
      if (!w) return { done: false, detail: `${what} is gone` };
      const generation = w.metadata?.generation ?? 0;
      const observed = w.status?.observedGeneration ?? 0;
      const ready = w.status?.readyReplicas ?? 0;
      const total = w.status?.replicas ?? 0;
      if (observed < generation)
        return { done: false, detail: `observedGeneration ${observed} < generation ${generation}` };
      return { done: ready === want && total === want, detail: `${ready}/${want} Ready, ${total} total` };
    },
  );
  return { detail: `${what} ${did}; ${seen}` };
}
