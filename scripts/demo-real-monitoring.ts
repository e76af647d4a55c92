/**
 * `npm run demo -- --real-monitoring`: the demo's egress-gw incident driven by real monitoring
 * instead of a hand-made webhook (issue 20). Prometheus (Debian `prometheus`) probes the gateway
 * through a blackbox-style exporter and evaluates examples/prometheus-rules.yml; two clustered
 * Alertmanagers (`prometheus-alertmanager`) run examples/alertmanager.yml and deliver to the
 * worker (workerd) through a recording hop, so the timeline shows each Alertmanager's own
 * delivery next to the worker's audit log and the agent's steps. The gateway fails, turnout
 * swaps the route, the gateway comes back, Alertmanager's resolve marks the side up. Stops
 * everything it started; exits 0 when egress-gw ends on secondary with its primary up again.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Side } from "../shared/config.ts";
import { type Stack, startStack, TOKENS } from "../test/e2e/stack.ts";
import { startAlertmanagerPair } from "../test/support/alertmanager.ts";
import { exampleAlertmanagerConfig, startGatewayPrometheus } from "../test/support/example-monitoring.ts";
import { startProbeExporter } from "../test/support/probe-exporter.ts";
import { type RecordedRequest, startWebhookRecorder } from "../test/support/webhook-recorder.ts";
import type { AuditEvent } from "../worker/target/target-view.ts";

const TARGET = "egress-gw";
const HOLD_SECONDS = 3;
const TIMEOUT_MS = 90_000;

type Detail = Record<string, unknown>;
const asDetail = (d: unknown): Detail =>
  typeof d === "object" && d !== null && !Array.isArray(d) ? (d as Detail) : {};
const str = (v: unknown) => (typeof v === "string" ? v : JSON.stringify(v));

/** An audit event as a timeline sentence (the demo's wording), or undefined to leave it out. */
function sentence(e: AuditEvent): string | undefined {
  const d = asDetail(e.detail);
  switch (e.type) {
    case "signal.firing":
    case "signal.resolved":
      return `worker: signal ${str(d.status)} for ${str(d.side)} (${str(d.key)})`;
    case "side.health-changed":
      return `worker: ${str(d.side)} side is ${str(d.health)} (was ${str(d.previous)})`;
    case "phase.changed":
      return `worker: phase ${str(d.from)} → ${str(d.to)}: ${str(d.reason)}`;
    case "action.dispatched":
      return `worker: action ${str(d.id)} ${str(d.kind)} ${str(d.from)} → ${str(d.to)} dispatched to the agent`;
    case "action.succeeded":
      return `agent: final report, ${str(d.id)} succeeded`;
    case "action.failed":
      return `agent: final report, ${str(d.id)} FAILED: ${str(d.error ?? d.reason ?? "")}`;
    case "action.progress":
    case "action.delivered":
      return undefined;
    default:
      return `worker: ${e.type} ${JSON.stringify(e.detail).slice(0, 120)}`;
  }
}

/** What one Alertmanager delivery carried, for the timeline. */
function delivery(r: RecordedRequest): string {
  let what = "";
  try {
    const body = JSON.parse(r.body) as {
      status?: string;
      alerts?: { status: string; labels: Record<string, string> }[];
    };
    what = (body.alerts ?? [])
      .map((a) => `${a.labels.alertname}{gateway="${a.labels.gateway}"} ${a.status}`)
      .join(", ");
  } catch {
    what = "unparsable body";
  }
  return `${r.sender}: POST /v1/alertmanager (${what}) → ${r.status}`;
}

/** Runs the demo; resolves to the exit code. */
export async function runRealMonitoringDemo(): Promise<number> {
  const scratch = mkdtempSync(join(tmpdir(), "turnout-demo-monitoring-"));
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const stop of stops.splice(0).reverse()) await stop().catch(() => {});
    rmSync(scratch, { recursive: true, force: true });
  };
  const interrupted = async (signal: string) => {
    console.log(`\ndemo: ${signal}; stopping everything it started`);
    await stopAll();
    process.exit(130);
  };
  process.once("SIGINT", () => void interrupted("SIGINT"));
  process.once("SIGTERM", () => void interrupted("SIGTERM"));
  try {
    console.log(
      "demo: starting the worker (workerd), the agent (sandbox), Prometheus and two clustered Alertmanagers …",
    );
    const startedAt = performance.now();
    let workerUrl = "";
    const recorder = await startWebhookRecorder(() => workerUrl);
    stops.push(() => recorder.stop());
    const probes = await startProbeExporter();
    stops.push(() => probes.stop());
    const tokenFile = join(scratch, "alertmanager-token");
    writeFileSync(tokenFile, TOKENS.alertmanager);
    const [stack, pair] = await Promise.all([
      startStack({ targets: { [TARGET]: { kind: "route-swap", holdSeconds: HOLD_SECONDS } } }).then((s) => {
        stops.push(() => s.stop());
        workerUrl = s.worker.url;
        return s;
      }),
      startAlertmanagerPair({
        config: (i) => exampleAlertmanagerConfig(recorder.urlFor(`alertmanager-${i}`), tokenFile),
        // Both peers deliver (as when gossip lags): the timeline shows turnout taking one.
        peerTimeout: "0s",
      }).then((p) => {
        stops.push(() => p.stop());
        return p;
      }),
    ]);
    const gateway = (side: Side) => stack.labels(TARGET, side).gateway ?? "";
    const prometheus = await startGatewayPrometheus({
      gateways: [gateway("primary"), gateway("secondary")],
      alertmanagers: pair.peers.map((p) => p.address),
      exporterAddress: probes.address,
    });
    stops.push(() => prometheus.stop());
    console.log(
      `demo: worker ${stack.worker.url}, agent ${stack.agentUrl}, Prometheus ${prometheus.url}, Alertmanagers ${pair.peers.map((p) => p.url).join(" + ")}`,
    );
    console.log(
      `demo: up in ${((performance.now() - startedAt) / 1000).toFixed(1)} s; examples/prometheus-rules.yml and examples/alertmanager.yml as shipped; holdSeconds ${HOLD_SECONDS}\n`,
    );
    const ok = await incident(stack, probes.set, () => recorder.requests(), prometheus.alerts, gateway("primary"));
    return ok ? 0 : 1;
  } finally {
    await stopAll();
    console.log("demo: stopped everything it started (worker, agent, Prometheus, Alertmanagers)");
  }
}

/** Fails the gateway, prints the timeline until the route is swapped and the resolve has marked it up. */
async function incident(
  stack: Stack,
  setProbe: (target: string, up: boolean) => void,
  requests: () => RecordedRequest[],
  alerts: () => Promise<{ labels: Record<string, string>; state: string; activeAt: string }[]>,
  gateway: string,
): Promise<boolean> {
  const t0 = Date.now();
  setProbe(gateway, false);
  const lines: { at: number; text: string }[] = [
    { at: t0, text: `probe: gateway ${gateway} stops answering (probe_success 0)` },
  ];
  const printed = new Set<string>();
  const print = () => {
    lines.sort((a, b) => a.at - b.at);
    for (const l of lines) {
      const key = `${l.at}|${l.text}`;
      if (printed.has(key)) continue;
      printed.add(key);
      console.log(`  +${((l.at - t0) / 1000).toFixed(3).padStart(7)} s  ${l.text}`);
    }
  };
  let lastSeq = 0;
  let seenAlert = false;
  let recoveredAt: number | undefined;
  let ok = false;
  const deadline = Date.now() + TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (!seenAlert) {
      const active = (await alerts()).find((a) => a.labels.gateway === gateway && a.state === "firing");
      if (active) {
        seenAlert = true;
        lines.push({ at: Date.parse(active.activeAt), text: `prometheus: GatewayDown{gateway="${gateway}"} firing` });
      }
    }
    for (const r of requests()) lines.push({ at: r.at, text: delivery(r) });
    const events = (await stack.events(TARGET)).filter((e) => e.seq > lastSeq);
    for (const e of events) {
      lastSeq = e.seq;
      const text = sentence(e);
      if (text) lines.push({ at: Date.parse(e.at), text });
    }
    const view = await stack.view(TARGET);
    for (const step of view.action?.steps ?? []) {
      if (step.finishedAt) {
        lines.push({
          at: Date.parse(step.finishedAt),
          text: `agent:   step ${step.name} ${step.status}: ${step.detail ?? ""}`,
        });
      }
    }
    // The line set is rebuilt from the sources each poll; printing dedupes by time and text.
    print();
    lines.splice(0);
    const swapped = view.activeSide === "secondary" && view.phase === "steady" && view.action?.status === "succeeded";
    if (swapped && recoveredAt === undefined) {
      recoveredAt = Date.now();
      setProbe(gateway, true);
      console.log(
        `  +${((recoveredAt - t0) / 1000).toFixed(3).padStart(7)} s  probe: gateway ${gateway} answers again`,
      );
    }
    if (swapped && recoveredAt !== undefined && view.sides.primary.health === "up") {
      ok = true;
      break;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  const view = await stack.view(TARGET);
  const dispatched = (await stack.events(TARGET)).filter((e) => e.type === "action.dispatched").length;
  const deliveries = requests().length;
  console.log(
    `\ndemo: final state: ${TARGET} activeSide ${view.activeSide}, phase ${view.phase}, primary ${view.sides.primary.health}; ` +
      `${deliveries} Alertmanager deliveries, ${dispatched} action${dispatched === 1 ? "" : "s"} (failback is manual)`,
  );
  console.log(
    ok ? "demo: done" : "demo: FAILED: the route was not swapped, or the resolve never marked the primary up",
  );
  return ok && dispatched === 1;
}
