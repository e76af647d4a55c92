/**
 * The `permissions` check (design §11.3): each write a step would make, asked of the API server as
 * a SelfSubjectAccessReview (`authorization.k8s.io/v1`, which every authenticated identity may
 * create: the default `system:basic-user` ClusterRole). A review is a question, never a write, so
 * a Role that lost a verb in a manifest cleanup shows here, weeks before the failover that needs it.
 */
import { AuthorizationV1Api, type KubeConfig } from "@kubernetes/client-node";
import type { ReadinessCheck } from "../../shared/protocol.ts";
import { apiErrorText } from "../kube-api.ts";
import { destination } from "./check.ts";

/** One write, as RBAC sees it (`kubectl auth can-i <verb> <resource>[/<sub>] [<name>] -n <ns>`). */
export interface WriteAttributes {
  verb: string;
  /** "" for the core group. */
  group: string;
  resource: string;
  subresource?: string;
  /** Absent for cluster-scoped objects. */
  namespace?: string;
  /** Absent for a create by POST (RBAC sees no name then). */
  name?: string;
}

/** Asks the API server about writes. */
export interface AccessReviewer {
  /** Whether the agent's own identity may make each write; answers in the same order. */
  review(writes: readonly WriteAttributes[]): Promise<{ write: WriteAttributes; allowed: boolean; reason: string }[]>;
}

/** `kubectl auth can-i`'s way of writing a request, as check details name it. */
export function describeWrite(w: WriteAttributes): string {
  const res = w.subresource ? `${w.resource}/${w.subresource}` : w.resource;
  const group = w.group ? `.${w.group}` : "";
  return `${w.verb} ${res}${group}${w.name ? `/${w.name}` : ""}${w.namespace ? ` -n ${w.namespace}` : ""}`;
}

/** SelfSubjectAccessReviews with the agent's credentials. */
export function kubeAccessReviewer(kubeConfig: KubeConfig): AccessReviewer {
  const api = kubeConfig.makeApiClient(AuthorizationV1Api);
  return {
    review: (writes) =>
      Promise.all(
        writes.map(async (write) => {
          const answer = await api.createSelfSubjectAccessReview({
            body: {
              apiVersion: "authorization.k8s.io/v1",
              kind: "SelfSubjectAccessReview",
              spec: {
                resourceAttributes: {
                  verb: write.verb,
                  group: write.group,
                  resource: write.resource,
                  ...(write.subresource ? { subresource: write.subresource } : {}),
                  ...(write.namespace ? { namespace: write.namespace } : {}),
                  ...(write.name ? { name: write.name } : {}),
                },
              },
            },
          });
          return { write, allowed: answer.status?.allowed === true, reason: answer.status?.reason ?? "" };
        }),
      ),
  };
}

/** The `permissions` destination check: every write allowed, or the ones that are not, named. */
export async function permissionsCheck(
  reviewer: AccessReviewer,
  writes: readonly WriteAttributes[],
): Promise<ReadinessCheck> {
  if (writes.length === 0) return destination("permissions", true, "no Kubernetes writes in these steps");
  try {
    const answers = await reviewer.review(writes);
    const denied = answers.filter((a) => !a.allowed).map((a) => describeWrite(a.write));
    return denied.length === 0
      ? destination("permissions", true, `${answers.length} write(s) allowed by SelfSubjectAccessReview`)
      : destination(
          "permissions",
          false,
          `the agent's Role does not allow: ${denied.join("; ")} (add the verb to its Role or ClusterRole in agent/deploy/)`,
        );
  } catch (err) {
    return destination("permissions", false, `SelfSubjectAccessReview failed: ${apiErrorText(err)}`);
  }
}
