/**
 * The body of a request to one of the tests' local HTTP fakes (DNS providers, QStash, the report
 * receiver, a stand-in agent or worker, the webhook recorder), read whole as bytes or UTF-8 text.
 */
import type { IncomingMessage } from "node:http";

/** The request body as the bytes sent (for a hop that forwards it unchanged). */
export async function readBytes(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** The request body as UTF-8 text. */
export async function readText(req: IncomingMessage): Promise<string> {
  return (await readBytes(req)).toString("utf8");
}
