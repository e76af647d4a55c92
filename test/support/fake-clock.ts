/**
 * A clock for executors that wait (`now` + `sleep`): sleeping advances the time at once and is
 * recorded, so polling and back-off are tested without real waits.
 */

/** Starts at the real current time; `slept` lists every sleep in order (ms). */
export function fakeClock() {
  let t = Date.now();
  const slept: number[] = [];
  return {
    now: () => t,
    sleep: async (ms: number) => {
      slept.push(ms);
      t += ms;
    },
    slept,
  };
}
