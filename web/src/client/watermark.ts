// A device's contiguous watermark in its mailbox (PROTOCOL.md section 3):
// every seq up to it has been received and stored here. An `ack` covers every
// event up to its seq, and the server stops sending what a connection has
// acknowledged, so the client acknowledges this watermark, never the seq of
// the event it just stored: an event pushed ahead of a streaming backlog
// arrives before the backlog below it, and acknowledging it would end the
// backlog there. It is also the cursor a reconnect resumes after.
export class Watermark {
  private value = 0n;
  private known = false;
  private head: bigint | undefined;
  private readonly above = new Set<bigint>(); // stored, above the watermark

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
    return !(this.known && s <= this.value) && !this.above.has(s);
  }

  // The event is stored. Returns the new watermark when it moved (what to
  // acknowledge and keep as the cursor), else undefined.
  stored(seq: string): string | undefined {
    const s = BigInt(seq);
    if (!this.known) {
      // A device without a cursor of its own: the server streams after the
      // device's cursor, at most the head hello named, so the first event
      // is the backlog's first or the next new one.
      this.value = this.head !== undefined && this.head < s - 1n ? this.head : s - 1n;
      this.known = true;
    }
    if (s <= this.value) return undefined;
    this.above.add(s);
    const before = this.value;
    while (this.above.delete(this.value + 1n)) this.value += 1n;
    return this.value !== before ? this.value.toString() : undefined;
  }

  current(): string | undefined {
    return this.known ? this.value.toString() : undefined;
  }
}
