/**
 * The clusters a plan's steps act on (design §11.2): the agent's own, and each entry of the agent
 * config's `clusters: {"<name>": {kubeconfig}}`, loaded once. A kubeconfig there widens what the
 * agent's key can do (design §11.6, docs/security.md).
 */
import { KubeConfig, VersionApi } from "@kubernetes/client-node";
import { StepError } from "../executor.ts";

export interface PlanClusters {
  /** The KubeConfig of `name`, or the agent's own cluster when `name` is undefined. */
  kubeConfig(name: string | undefined): KubeConfig;
  /** Whether the cluster's API server answers `GET /version` within `timeoutMs`. */
  reachable(name: string | undefined, timeoutMs?: number): Promise<boolean>;
}

/** Clusters from the agent's own KubeConfig and the config's `clusters` (files read on first use). */
export function planClusters(own: KubeConfig, clusters: Record<string, { kubeconfig: string }>): PlanClusters {
  const loaded = new Map<string, KubeConfig>();
  const kubeConfig = (name: string | undefined): KubeConfig => {
    if (name === undefined) return own;
    const entry = Object.hasOwn(clusters, name) ? clusters[name] : undefined;
    if (!entry) throw new StepError("config", `cluster ${JSON.stringify(name)} is not in the agent config's clusters`);
    let kc = loaded.get(name);
    if (!kc) {
      kc = new KubeConfig();
      kc.loadFromFile(entry.kubeconfig);
      loaded.set(name, kc);
    }
    return kc;
  };
  return {
    kubeConfig,
    async reachable(name, timeoutMs = 5000) {
      const api = kubeConfig(name).makeApiClient(VersionApi);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
      });
      try {
        return await Promise.race([api.getCode().then(() => true), timeout]);
      } catch {
        return false;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
