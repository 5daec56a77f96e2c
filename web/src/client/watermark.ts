// A device's contiguous watermark in its mailbox (PROTOCOL.md section 3):
// every seq up to it has been received and stored here. An `ack` covers every
// event up to its seq, and the server stops sending what a connection has
// acknowledged, so the client acknowledges this watermark, never the seq of
// the event it just stored: an event pushed ahead of a streaming backlog
// arrives before the backlog below it, and acknowledging it would end the
// backlog there. It is also the cursor a reconnect resumes after.
//
// A gap that stays open (an event purged by retention while it was on its
// way is never sent) would hold the acks back for good, and the server
// stops at 256 unacknowledged events: after kGapTimeoutMs without progress
// the watermark passes it, as the C++ SDK does (sdk/src/sync.cpp). A skipped
// seq that arrives after all is still stored.
export const kGapTimeoutMs = 5000;
const kMaxSkipped = 10000;

export class Watermark {
  private value = 0n;
  private known = false;
  private head: bigint | undefined;
  private readonly above = new Set<bigint>(); // stored, above the watermark
  private readonly skipped = new Set<bigint>(); // passed as a gap, not stored
  private progressAt = 0;

  // Each hello: `resumeAfter` as it was sent (the stream starts after it),
  // and the ok's head_seq.
  hello(resumeAfter: string | undefined, headSeq: string | undefined) {
    if (resumeAfter !== undefined && !this.known) {
      this.value = BigInt(resumeAfter);
      this.known = true;
    }
    this.head = headSeq !== undefined ? BigInt(headSeq) : undefined;
  }

  // Whether an event with this seq still has to be stored (false: a
  // duplicate, sent again after a reconnect).
  fresh(seq: string): boolean {
    const s = BigInt(seq);
    if (this.skipped.has(s)) return true;
    return !(this.known && s <= this.value) && !this.above.has(s);
  }

  // The event is stored. Returns the new watermark when it moved (what to
  // acknowledge and keep as the cursor), else undefined.
  stored(seq: string, now = Date.now()): string | undefined {
    const s = BigInt(seq);
    if (this.skipped.delete(s)) return undefined; // a gap's event, late
    if (!this.known) {
      // A device without a cursor of its own: the server streams after the
      // device's cursor, at most the head hello named, so the first event
      // is the backlog's first or the next new one.
      this.value = this.head !== undefined && this.head < s - 1n ? this.head : s - 1n;
      this.known = true;
    }
    if (s <= this.value) return undefined;
    if (this.above.size === 0) this.progressAt = now;
    this.above.add(s);
    return this.advance(now);
  }

  // Whether events above the watermark wait for one below them.
  hasGap(): boolean {
    return this.above.size > 0;
  }

  // Past the lowest gap once it has been open kGapTimeoutMs without
  // progress. Returns the new watermark when it moved.
  skipStaleGap(now = Date.now()): string | undefined {
    if (this.above.size === 0 || now - this.progressAt < kGapTimeoutMs) return undefined;
    const next = [...this.above].reduce((a, b) => (b < a ? b : a));
    for (let s = this.value + 1n; s < next && this.skipped.size < kMaxSkipped; s += 1n) {
      this.skipped.add(s);
    }
    this.value = next - 1n;
    return this.advance(now);
  }

  current(): string | undefined {
    return this.known ? this.value.toString() : undefined;
  }

  private advance(now: number): string | undefined {
    const before = this.value;
    while (this.above.delete(this.value + 1n)) this.value += 1n;
    if (this.value === before) return undefined;
    this.progressAt = now;
    return this.value.toString();
  }
}
