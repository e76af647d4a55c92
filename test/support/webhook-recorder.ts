/**
 * An HTTP hop between monitoring and the worker for end-to-end tests: `POST /<sender>/<path>` is
 * forwarded unchanged (headers, body) to `<worker>/<path>` and the worker's answer returned, and
 * every request is recorded (which sender, body, status, when). So a test knows which of two
 * Alertmanager peers delivered what, keeps the exact bodies real programs sent, and can inject a
 * short-lived fault: `failOnce` forwards one matching request (the worker records it) and then
 * answers 503 instead of the worker's 200, as when a delivery to one target failed.
 */
import { createServer, type Server } from "node:http";
import { freePorts } from "./free-port.ts";
import { readBytes } from "./request-text.ts";

export interface RecordedRequest {
  sender: string;
  path: string;
  contentType: string;
  body: string;
  /** What the sender got. */
  status: number;
  /** When the request arrived (ms). */
  at: number;
  /** When it was answered (ms). */
  answeredAt: number;
}

export interface WebhookRecorder {
  /** `http://127.0.0.1:<port>/<sender>`: give it to the sender in place of the worker's base URL. */
  urlFor(sender: string): string;
  requests(): RecordedRequest[];
  /** The next request whose body satisfies `match` is forwarded, then answered 503 (once). */
  failOnce(match: (body: string) => boolean): void;
  stop(): Promise<void>;
}

/** Starts the recorder in front of the worker whose base URL `workerUrl()` gives (known once it runs). */
export async function startWebhookRecorder(workerUrl: () => string): Promise<WebhookRecorder> {
  const recorded: RecordedRequest[] = [];
  const faults: ((body: string) => boolean)[] = [];
  const server: Server = createServer((req, res) => {
    void (async () => {
      const at = Date.now();
      const [, sender = "", ...rest] = (req.url ?? "/").split("/");
      const path = `/${rest.join("/")}`;
      const body = await readBytes(req);
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) {
        if (typeof v === "string" && !["host", "content-length", "connection"].includes(k)) headers[k] = v;
      }
      const text = body.toString("utf8");
      let status = 502;
      let answer = "";
      let answerType = "text/plain";
      try {
        const upstream = await fetch(`${workerUrl()}${path}`, {
          method: req.method,
          headers,
          body: new Uint8Array(body),
        });
        status = upstream.status;
        answer = await upstream.text();
        answerType = upstream.headers.get("content-type") ?? answerType;
      } catch (err) {
        answer = String(err);
      }
      const fault = faults.findIndex((f) => f(text));
      if (fault >= 0) {
        faults.splice(fault, 1);
        status = 503;
        answerType = "application/problem+json";
        answer = JSON.stringify({ type: "about:blank", title: "Service unavailable", status, detail: "test fault" });
      }
      recorded.push({
        sender,
        path,
        contentType: headers["content-type"] ?? "",
        body: text,
        status,
        at,
        answeredAt: Date.now(),
      });
      res.writeHead(status, { "content-type": answerType }).end(answer);
    })();
  });
  const [port = 0] = await freePorts(1);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  return {
    urlFor: (sender) => `http://127.0.0.1:${port}/${sender}`,
    requests: () => [...recorded],
    failOnce(match) {
      faults.push(match);
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
