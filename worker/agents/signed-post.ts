/**
 * The worker's signed POST to an agent (design §6, §11.6): the body signed with the destination
 * agent's key as Turnout-Signature, sent under a deadline, and the detail of a refusal read back.
 * Dispatch and approval forwarding both speak to the agent this way.
 */
import { SIGNATURE_HEADER, sign } from "../../shared/signature.ts";
import { fetchWithin } from "./fetch-within.ts";

export interface SignedPost {
  url: string;
  /** The exact JSON text that is signed and sent. */
  body: string;
  secret: string;
  /** Milliseconds since the epoch, for the signature's `t`. */
  now: number;
  timeoutMs: number;
  /** Names the peer in a timeout error, e.g. "the agent". */
  what: string;
  fetch?: typeof fetch;
}

/** Signs and POSTs `post.body`; throws on a network error or timeout like `fetch`. */
export async function postSigned(post: SignedPost): Promise<Response> {
  const signature = await sign(post.secret, post.body, Math.floor(post.now / 1000));
  return fetchWithin(
    post.timeoutMs,
    post.what,
    post.url,
    {
      method: "POST",
      headers: { "content-type": "application/json", [SIGNATURE_HEADER]: signature },
      body: post.body,
    },
    post.fetch,
  );
}

/** Reads a problem body's `detail` (or the text) for logs and the audit trail. */
export async function answerDetail(res: Response): Promise<string> {
  const text = await res.text().catch(() => "");
  try {
    const json = JSON.parse(text) as { detail?: unknown };
    if (typeof json.detail === "string") return json.detail;
  } catch {
    // not JSON
  }
  return text.slice(0, 500) || `HTTP ${res.status}`;
}
