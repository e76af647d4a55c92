/** `GET <agent>/v1/actions/:id` as the protocol wants it: a Turnout-Signature over the path (design §6). */
import { SIGNATURE_HEADER, signPath } from "../../shared/signature.ts";

/** GETs `path` from `baseUrl` with the path signed by `secret`. */
export async function signedGet(baseUrl: string, path: string, secret: string): Promise<Response> {
  const url = new URL(path, baseUrl);
  const signature = await signPath(secret, url.pathname, Math.floor(Date.now() / 1000));
  return fetch(url, { headers: { [SIGNATURE_HEADER]: signature } });
}
