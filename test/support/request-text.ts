/**
 * The body of a request to one of the tests' local HTTP fakes (DNS providers, QStash, the report
 * receiver, a stand-in agent or worker), read whole as UTF-8 text.
 */
import type { IncomingMessage } from "node:http";

/** The request body as UTF-8 text. */
export async function readText(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}
