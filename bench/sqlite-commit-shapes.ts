/** The transaction shapes of the `sqlite-commit` bench (bench/sqlite-commit-worker.ts), in table order. */
export const SHAPES = ["none", "floor", "signal", "signal+events", "signal+events+state"] as const;
export type Shape = (typeof SHAPES)[number];
