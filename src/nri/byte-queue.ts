/**
 * A queue of received bytes that a decoder takes whole records from. Chunks are kept as they
 * arrived and copied only when a record spans several of them, so reassembling a large message
 * from many small reads costs one copy, not one per read.
 */
export class ByteQueue {
  private chunks: Buffer[] = [];
  private total = 0;

  get length(): number {
    return this.total;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.total += chunk.length;
  }

  /** The first n bytes (n <= length), without consuming them. */
  peek(n: number): Buffer {
    const first = this.chunks[0];
    if (first !== undefined && first.length >= n) return first.subarray(0, n);
    return this.gather(n, false);
  }

  /** Removes and returns the first n bytes (n <= length). */
  take(n: number): Buffer {
    const first = this.chunks[0];
    if (first !== undefined && first.length >= n) {
      this.total -= n;
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    return this.gather(n, true);
  }

  clear(): void {
    this.chunks = [];
    this.total = 0;
  }

  private gather(n: number, consume: boolean): Buffer {
    if (n > this.total) throw new RangeError(`ByteQueue: ${n} bytes asked, ${this.total} held`);
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    let i = 0;
    while (filled < n) {
      const c = this.chunks[i]!;
      const part = Math.min(c.length, n - filled);
      c.copy(out, filled, 0, part);
      filled += part;
      if (consume && part < c.length) this.chunks[i] = c.subarray(part);
      else i++;
      if (part < c.length) break;
    }
    if (consume) {
      this.chunks.splice(0, i);
      this.total -= n;
    }
    return out;
  }
}
