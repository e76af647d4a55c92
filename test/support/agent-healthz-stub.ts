/**
 * A stand-in agent's `GET /healthz` over real HTTP, for the workerd tests of the rule 17 probe
 * (test/worker/agents-probe.test.ts): the worker's object probes it as it probes a real agent.
 * Namespaced by a name in the path (`/a/<name>/healthz`), so tests side by side never share one.
 * A name answers only once a test set it `up`: a stub nobody raised is an agent that is gone.
 *
 * Control (from the tests, also over HTTP):
 *   POST /control/<name>/mode {"mode": "up" | "down"}: down resets every connection;
 *   GET  /control/<name>/log: every probe received so far (path and headers), oldest first.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { ProbeReceived } from "./probe-received.ts";
import { readText } from "./request-text.ts";

export interface AgentHealthzStub {
  url: string;
  close(): Promise<void>;
}

/** Starts the stub on a free port of 127.0.0.1. */
export async function startAgentHealthzStub(): Promise<AgentHealthzStub> {
  const modes = new Map<string, "up" | "down">();
  const logs = new Map<string, ProbeReceived[]>();
  const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { "content-type": "application/json", ...headers });
    res.end(JSON.stringify(body));
  };
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const parts = new URL(req.url ?? "/", "http://stub").pathname.split("/").filter(Boolean);
    const name = parts[1];
    if (parts[0] === "control" && name) {
      if (parts[2] === "mode" && req.method === "POST") {
        const { mode } = JSON.parse(await readText(req)) as { mode: "up" | "down" };
        modes.set(name, mode);
        return json(res, 200, { mode });
      }
      if (parts[2] === "log") return json(res, 200, logs.get(name) ?? []);
      return json(res, 404, {});
    }
    if (parts[0] !== "a" || !name) return json(res, 404, {});
    const headers = Object.fromEntries(
      Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(", ") : (v ?? "")]),
    );
    const path = `/${parts.slice(2).join("/")}`;
    (logs.get(name) ?? logs.set(name, []).get(name))?.push({ method: req.method ?? "", path, headers });
    if ((modes.get(name) ?? "down") === "down") {
      req.socket.destroy();
      return;
    }
    if (req.method === "GET" && path === "/healthz") {
      return json(res, 200, { ok: true, agent: name }, { "turnout-agent": name });
    }
    json(res, 404, { message: "no such path" });
  };
  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) json(res, 500, { message: String(err) });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
