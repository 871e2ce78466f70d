/**
 * The socket under the mux: a unix stream connected to the runtime's NRI socket, or the
 * socketpair end a runtime hands a plugin it launched (fd 3). Cuts what arrives into frames
 * (mux.ts) and writes each outgoing message as Go-readable frames. The only I/O of the
 * transport; everything above it is fed and drained through callbacks.
 */
import type { Duplex } from 'node:stream';
import { encodeFrames, MuxDecoder, type Frame } from './mux.js';

export class Trunk {
  private readonly decoder = new MuxDecoder();
  private ended = false;

  /**
   * onFrame gets every complete frame; onEnd is called once, when the socket closes, fails,
   * sends something that is not NRI mux framing, or close() is called.
   */
  constructor(
    private readonly socket: Duplex,
    onFrame: (f: Frame) => void,
    private readonly onEnd: (err?: Error) => void,
  ) {
    socket.on('data', (chunk: Buffer) => {
      if (this.ended) return;
      let frames: Frame[];
      try {
        frames = this.decoder.push(chunk);
      } catch (e) {
        this.close(e as Error);
        return;
      }
      for (const f of frames) {
        if (this.ended) return;
        onFrame(f);
      }
    });
    socket.on('error', (e) => this.close(e));
    socket.on('close', () => this.close());
    socket.on('end', () => this.close());
  }

  get closed(): boolean {
    return this.ended;
  }

  /** Sends one whole message on a connection; dropped once the trunk is closed. */
  send(conn: number, message: Buffer): void {
    if (this.ended) return;
    // one write per message: its frames are never interleaved with another message's
    this.socket.write(Buffer.concat(encodeFrames(conn, message)));
  }

  close(err?: Error): void {
    if (this.ended) return;
    this.ended = true;
    this.socket.destroy();
    this.onEnd(err);
  }
}
