/**
 * A stand-in for the worker's `POST /v1/agent/reports` over real HTTP: verifies Turnout-Signature
 * (before parsing, like the worker), records every acknowledged report, and can be told to lose
 * deliveries (answer 503, or drop the connection) to prove the agent re-sends.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { type ActionReport, ActionReportSchema, AGENT_HEADER, DEFAULT_AGENT } from "../../shared/protocol.ts";
import { SIGNATURE_HEADER, verify } from "../../shared/signature.ts";
import { readText } from "./request-text.ts";

export type Fault = "503" | "drop";

export interface ReportReceiver {
  url: string;
  /** Acknowledged reports, in arrival order. */
  reports: ActionReport[];
  /** The `Turnout-Agent` each acknowledged report named (absent: `default`), in the same order. */
  agents: string[];
  /** Every attempt, including the ones answered with a fault. */
  attempts: number;
  /** Faults to apply to the next attempts, in order. */
  faults: Fault[];
  /** Signature failures seen (should stay empty). */
  rejected: string[];
  /** Resolves when an acknowledged report satisfies `predicate`. */
  waitFor(predicate: (r: ActionReport) => boolean, timeoutMs?: number): Promise<ActionReport>;
  close(): Promise<void>;
}

const REPORT_PATH = "/v1/agent/reports";

/** Starts a receiver on 127.0.0.1 with a random port. */
export async function startReportReceiver(secret: string): Promise<ReportReceiver> {
  const waiters: { predicate: (r: ActionReport) => boolean; resolve: (r: ActionReport) => void }[] = [];
  const state: Omit<ReportReceiver, "url" | "waitFor" | "close"> = {
    reports: [],
    agents: [],
    attempts: 0,
    faults: [],
    rejected: [],
  };
  const server: Server = createServer(async (req, res) => {
    const body = await readText(req);
    // An agent also sends heartbeats to this origin (its heartbeatUrl's default): not reports.
    if (req.url !== REPORT_PATH) {
      res.writeHead(404, { "content-type": "application/problem+json" }).end('{"status":404}');
      return;
    }
    state.attempts += 1;
    const fault = state.faults.shift();
    if (fault === "drop") {
      req.socket.destroy();
      return;
    }
    if (fault === "503") {
      res.writeHead(503, { "content-type": "application/problem+json" }).end('{"status":503}');
      return;
    }
    const header = req.headers[SIGNATURE_HEADER.toLowerCase()];
    const check = await verify([secret], typeof header === "string" ? header : undefined, body, Date.now() / 1000);
    if (!check.ok) {
      state.rejected.push(check.reason);
      res.writeHead(401).end();
      return;
    }
    const report = ActionReportSchema.parse(JSON.parse(body));
    state.reports.push(report);
    const agent = req.headers[AGENT_HEADER.toLowerCase()];
    state.agents.push(typeof agent === "string" ? agent : DEFAULT_AGENT);
    res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
    for (const w of [...waiters]) {
      if (w.predicate(report)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(report);
      }
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}${REPORT_PATH}`,
    waitFor: (predicate: (r: ActionReport) => boolean, timeoutMs = 10_000) => {
      const found = state.reports.find(predicate);
      if (found) return Promise.resolve(found);
      return new Promise<ActionReport>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("timed out waiting for a report")), timeoutMs);
        waiters.push({
          predicate,
          resolve: (r) => {
            clearTimeout(timer);
            resolve(r);
          },
        });
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}
