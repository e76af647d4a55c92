import { existsSync } from "node:fs";
import type { AgentConfig } from "../shared/config.ts";

/** Where the service-account token lives in a pod. */
export const SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/**
 * How the agent reaches Kubernetes (design §8): an explicit kubeconfig, the pod's service
 * account, or, when neither exists, the in-process sandbox cluster of design §9.
 */
export type ClusterMode = "kubeconfig" | "in-cluster" | "sandbox";

export function detectMode(config: Pick<AgentConfig, "kubeconfig">, tokenPath = SERVICE_ACCOUNT_TOKEN): ClusterMode {
  if (config.kubeconfig) return "kubeconfig";
  if (existsSync(tokenPath)) return "in-cluster";
  return "sandbox";
}
