/**
 * A stand-in for the Prometheus blackbox exporter's `/probe?target=<t>` endpoint (same path,
 * parameter and `probe_success` gauge), whose answer per target the test sets: Prometheus scrapes
 * it with the usual blackbox relabelling, so the example rules see what a real probe would give.
 * Debian's prometheus-blackbox-exporter would need real unreachable gateways to fail a probe.
 */
import { createServer, type Server } from "node:http";
import { freePorts } from "./free-port.ts";

export interface ProbeExporter {
  /** `host:port`, the `__address__` a blackbox scrape job relabels to. */
  address: string;
  /** Sets whether probes of `target` succeed (default: they do). */
  set(target: string, up: boolean): void;
  stop(): Promise<void>;
}

/** Starts the exporter on a random free port. */
export async function startProbeExporter(): Promise<ProbeExporter> {
  const state = new Map<string, boolean>();
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (url.pathname !== "/probe") {
      res.writeHead(404).end();
      return;
    }
    const target = url.searchParams.get("target") ?? "";
    const up = state.get(target) ?? true;
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
    res.end(
      [
        "# HELP probe_success Displays whether or not the probe was a success",
        "# TYPE probe_success gauge",
        `probe_success ${up ? 1 : 0}`,
        "# HELP probe_duration_seconds Returns how long the probe took to complete in seconds",
        "# TYPE probe_duration_seconds gauge",
        `probe_duration_seconds ${up ? 0.002 : 1}`,
        "",
      ].join("\n"),
    );
  });
  const [port = 0] = await freePorts(1);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  return {
    address: `127.0.0.1:${port}`,
    set(target, up) {
      state.set(target, up);
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
