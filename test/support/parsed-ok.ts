/** For tests of bodies that must parse: the parser's success, or a failure naming its errors. Pure. */

/** The `{ ok: true }` result of a parse; throws with the result's errors otherwise. */
export function parsedOk<R extends { ok: boolean }>(result: R): Extract<R, { ok: true }> {
  if (!result.ok) throw new Error(JSON.stringify("errors" in result ? result.errors : result));
  return result as Extract<R, { ok: true }>;
}
