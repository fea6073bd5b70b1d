/** What one subscription has handed to the app: its resume position and a per-topic duplicate filter. */

import type { Position } from "./frames.js";

export class ResumeTracker {
  /** topic -> the last offset handed to the app on it (insertion order = least recently used first) */
  private readonly seen = new Map<string, Position>();
  private last: Position | undefined;

  /** `maxTopics` bounds the memory a `**` pattern over many topics can take. */
  constructor(private readonly maxTopics = 10_000) {}

  /**
   * Record a message and say whether it is new: false for an offset at or below one
   * already handed over on the same topic and epoch (a replay overlapping what came live,
   * or the same message reaching two overlapping patterns' replays).
   */
  accept(topic: string, offset: number, epoch: string): boolean {
    const prev = this.seen.get(topic);
    if (prev !== undefined) {
      if (prev.epoch === epoch && offset <= prev.offset) return false;
      this.seen.delete(topic);
    }
    this.seen.set(topic, { offset, epoch });
    if (this.seen.size > this.maxTopics) {
      const oldest = this.seen.keys().next();
      if (oldest.done !== true) this.seen.delete(oldest.value);
    }
    // Offsets are sequences in one stream, so the highest one handed over is where to resume.
    if (this.last === undefined || this.last.epoch !== epoch || offset > this.last.offset) {
      this.last = { offset, epoch };
    }
    return true;
  }

  /** Where to resume: the highest offset handed over, in the epoch of the newest message. */
  get position(): Position | undefined {
    return this.last;
  }
}
