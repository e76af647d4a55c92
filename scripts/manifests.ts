/**
 * npm run manifests -- --config <agent config> [--cluster <name> | --cluster own]
 *
 * Prints the least-privilege RBAC (Roles per namespace, a ClusterRole for what cannot be
 * namespaced, their bindings to the agent's ServiceAccount; `resourceNames` wherever Kubernetes
 * allows) that the config's targets need: every executor and every plan step (design §11.2,
 * §11.6). One set per cluster: the agent's own, then each entry of `clusters` a step acts on;
 * `--cluster` prints one of them. Exits 1 on an invalid config, 2 on bad arguments.
 */
import { parseArgs } from "node:util";
import { ConfigError, loadAgentConfigFile } from "../agent/config-file.ts";
import { renderAgentRbac } from "../agent/rbac/manifests.ts";
import { OWN_CLUSTER } from "../agent/rbac/permissions.ts";

const USAGE = "usage: npm run manifests -- --config <agent config> [--cluster <name> | --cluster own]";

let values: { config?: string; cluster?: string };
try {
  ({ values } = parseArgs({ options: { config: { type: "string" }, cluster: { type: "string" } } }));
} catch (err) {
  console.error(`${(err as Error).message}\n${USAGE}`);
  process.exit(2);
}
if (!values.config) {
  console.error(USAGE);
  process.exit(2);
}
try {
  const config = await loadAgentConfigFile(values.config);
  const cluster = values.cluster === "own" ? OWN_CLUSTER : values.cluster;
  process.stdout.write(renderAgentRbac(config, cluster));
} catch (err) {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(err instanceof ConfigError ? 1 : 2);
}
