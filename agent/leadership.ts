/**
 * Leadership: only the replica holding the Lease executes actions (design §7). The Lease loop
 * (agent/lease.ts) implements this; {@link alwaysLeader} serves single-replica tests.
 */
export interface LeadershipState {
  leader: boolean;
  /** The current holder's identity, when known. */
  holder?: string;
  /** Human-readable state for /readyz and logs. */
  detail: string;
}

export interface Leadership {
  isLeader(): boolean;
  state(): LeadershipState;
  /** Subscribes to changes; returns the unsubscribe function. */
  onChange(listener: (state: LeadershipState) => void): () => void;
  /** Stops renewing (and releases the Lease when held). */
  stop(): Promise<void>;
}

/** A Leadership that always leads (one replica, tests). */
export const alwaysLeader: Leadership = {
  isLeader: () => true,
  state: () => ({ leader: true, holder: "self", detail: "single replica" }),
  onChange: () => () => {},
  stop: async () => {},
};
