// CPU collectives over TCP with rank 0 as the hub (a star): each rank sends its array to rank 0,
// which reduces in rank order 0, 1, ..., N-1 and sends the result back. At a few ranks and the
// model sizes trained on CPUs this is bandwidth-bound on rank 0's link, like Gloo's star
// algorithms, and it makes sums deterministic (same order every run, on every rank).
//
// Frames: u32 payload bytes, u32 kind, u32 sequence number, payload. Ops are numbered; a frame
// from another op means the ranks ran different programs, and says so.
//
// Failure, never a hang: a peer whose socket closes (its process died) fails the pending and
// every later op at once; a peer silent for `timeoutMs` within an op fails it with a timeout.
// Rank 0 then sends the reason to every other rank (ABORT) before closing, so all of them
// report which rank failed rather than "rank 0 disconnected".
import net from "node:net";
import type { Backend, Tensor } from "../backend/backend.js";
import { allReduceTensorsOnHost, type Collective, type HostArray, type ReduceOp } from "./collective.js";

const HEADER = 12;
const RELAY_GRACE_MS = 5000;
const KIND = { hello: 1, ready: 2, data: 3, abort: 4 } as const;

interface Frame {
  kind: number;
  seq: number;
  payload: Buffer;
}

export interface TcpOptions {
  rank: number;
  worldSize: number;
  /** Rank 0's address: it listens there, the others connect to it. */
  host: string;
  port: number;
  /** Longest wait for a peer within an op, and for the rendezvous, in ms. */
  timeoutMs: number;
}

/** One connection: frames in arrival order, and at most one waiter. */
class Link {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private frames: Frame[] = [];
  private waiter: { resolve: (f: Frame) => void; reject: (e: Error) => void; timer?: NodeJS.Timeout } | null = null;
  private error: Error | null = null;
  /** Rank 0's reason, when it sent ABORT: the reason to report when the connection then closes. */
  abortReason: string | null = null;

  constructor(
    readonly socket: net.Socket,
    /** The rank at the other end (-1 until its hello arrives). */
    public peer: number,
    /** Called once when the connection errors or closes. */
    public onLost: (link: Link, why: string) => void,
  ) {
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    socket.on("data", (d) => this.onData(d));
    const lost = (why: string) => {
      if (this.error) return;
      this.onLost(this, why);
      this.fail(new Error(`rank ${this.peer}: ${why}`));
    };
    socket.on("error", (e) => lost(e.message));
    socket.on("close", () => lost("connection closed"));
  }

  send(kind: number, seq: number, payload: Uint8Array = new Uint8Array(0)): void {
    const head = Buffer.alloc(HEADER);
    head.writeUInt32LE(payload.byteLength, 0);
    head.writeUInt32LE(kind, 4);
    head.writeUInt32LE(seq, 8);
    this.socket.write(head);
    if (payload.byteLength) this.socket.write(payload);
  }

  /** The next frame; rejects on timeout (null: none) or when the link is lost. */
  next(timeoutMs: number | null, onTimeout: () => Error): Promise<Frame> {
    const f = this.frames.shift();
    if (f) return Promise.resolve(f);
    if (this.error) return Promise.reject(this.error);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      if (timeoutMs !== null) this.waiter.timer = setTimeout(() => this.fail(onTimeout()), timeoutMs);
    });
  }

  fail(e: Error): void {
    if (!this.error) this.error = e;
    const w = this.waiter;
    this.waiter = null;
    if (w) {
      clearTimeout(w.timer);
      w.reject(this.error);
    }
  }

  /** Bytes of the frame being received (header included), once its header is in. */
  private frameBytes: number | null = null;

  private onData(d: Buffer): void {
    this.chunks.push(d);
    this.buffered += d.length;
    for (;;) {
      if (this.frameBytes === null) {
        if (this.buffered < HEADER) return;
        this.chunks = [Buffer.concat(this.chunks, this.buffered)];
        this.frameBytes = HEADER + this.chunks[0].readUInt32LE(0);
      }
      // Chunks are joined once per frame, when it is complete (not on every chunk: a frame of
      // many MB arrives in thousands of them).
      if (this.buffered < this.frameBytes) return;
      const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.buffered);
      const frame = { kind: all.readUInt32LE(4), seq: all.readUInt32LE(8), payload: all.subarray(HEADER, this.frameBytes) };
      const rest = all.subarray(this.frameBytes);
      this.chunks = rest.length ? [rest] : [];
      this.buffered = rest.length;
      this.frameBytes = null;
      this.deliver(frame);
    }
  }

  private deliver(f: Frame): void {
    if (f.kind === KIND.abort) this.abortReason = f.payload.toString();
    const w = this.waiter;
    if (!w) return void this.frames.push(f);
    this.waiter = null;
    clearTimeout(w.timer);
    w.resolve(f);
  }
}

export class TcpCollective implements Collective {
  readonly rank: number;
  readonly worldSize: number;
  /** Rank 0: links[r] to rank r (links[0] unused). Others: links[0] to rank 0. */
  private links: Link[] = [];
  private seq = 0;
  private error: Error | null = null;
  private closed = false;

  private constructor(private readonly o: TcpOptions) {
    this.rank = o.rank;
    this.worldSize = o.worldSize;
  }

  /** Rendezvous: rank 0 listens and waits for every rank; the others connect (retrying while
   * rank 0 is not up yet). Resolves once all ranks are connected. */
  static async connect(o: TcpOptions): Promise<TcpCollective> {
    if (!Number.isInteger(o.worldSize) || o.worldSize < 1) throw new RangeError(`world size must be an integer >= 1, got ${o.worldSize}`);
    if (!Number.isInteger(o.rank) || o.rank < 0 || o.rank >= o.worldSize) throw new RangeError(`rank must be an integer in [0, ${o.worldSize - 1}], got ${o.rank}`);
    const c = new TcpCollective(o);
    if (o.worldSize > 1) await (o.rank === 0 ? c.listen() : c.dial());
    return c;
  }

  private lost = (link: Link, why: string): void => {
    if (this.closed) return;
    if (link.abortReason) return this.abort(new Error(link.abortReason));
    this.abort(new Error(`rank ${link.peer} is gone (${why}): its process died, was killed or lost the network`));
  };

  /** Fails every op from now on; rank 0 tells the others why. */
  private abort(e: Error): void {
    if (this.error) return;
    this.error = e;
    for (const l of this.links) {
      if (!l) continue;
      if (this.rank === 0 && !l.socket.destroyed) l.send(KIND.abort, this.seq, Buffer.from(e.message));
      l.fail(e);
      l.socket.end();
      setTimeout(() => l.socket.destroy(), 1000).unref();
    }
  }

  private async listen(): Promise<void> {
    const { host, port, worldSize, timeoutMs } = this.o;
    const server = net.createServer();
    const pending = new Set<net.Socket>();
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", (e) => reject(new Error(`rank 0 cannot listen on ${host}:${port}: ${e.message}`)));
        server.listen(port, isLoopback(host) ? host : undefined, () => resolve());
      });
      const linked = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          const missing = [...Array(worldSize).keys()].slice(1).filter((r) => !this.links[r]);
          reject(new Error(`rendezvous on ${host}:${port}: rank(s) ${missing.join(", ")} did not connect within ${timeoutMs / 1000} s`));
        }, timeoutMs);
        server.on("connection", (socket) => {
          pending.add(socket);
          const link = new Link(socket, -1, () => {});
          link
            .next(timeoutMs, () => new Error("no hello"))
            .then((f) => {
              const hello = JSON.parse(f.payload.toString()) as { rank: number; worldSize: number };
              const bad =
                f.kind !== KIND.hello ? "not an anvil rank"
                : hello.worldSize !== worldSize ? `world size ${hello.worldSize}, expected ${worldSize}`
                : !(hello.rank >= 1 && hello.rank < worldSize) ? `rank ${hello.rank} out of range`
                : this.links[hello.rank] ? `rank ${hello.rank} twice`
                : null;
              if (bad) {
                clearTimeout(timer);
                link.send(KIND.abort, 0, Buffer.from(`rendezvous refused: ${bad}`));
                socket.destroy();
                return reject(new Error(`rendezvous on ${host}:${port}: a peer connected with ${bad}`));
              }
              pending.delete(socket);
              link.peer = hello.rank;
              link.onLost = this.lost;
              this.links[hello.rank] = link;
              if (this.links.filter(Boolean).length === worldSize - 1) {
                clearTimeout(timer);
                resolve();
              }
            })
            .catch(() => socket.destroy());
        });
      });
      await linked;
      for (const l of this.links.slice(1)) l.send(KIND.ready, 0);
    } catch (e) {
      for (const s of pending) s.destroy();
      this.close();
      throw e;
    } finally {
      server.close();
    }
  }

  private async dial(): Promise<void> {
    const { host, port, rank, worldSize, timeoutMs } = this.o;
    const deadline = Date.now() + timeoutMs;
    let lastErr = "";
    for (;;) {
      const socket = await new Promise<net.Socket | null>((resolve) => {
        const s = net.connect(port, host);
        s.once("connect", () => resolve(s));
        s.once("error", (e) => {
          lastErr = e.message;
          s.destroy();
          resolve(null);
        });
      });
      if (socket) {
        const link = new Link(socket, 0, this.lost);
        this.links = [link];
        link.send(KIND.hello, 0, Buffer.from(JSON.stringify({ rank, worldSize })));
        try {
          const f = await link.next(Math.max(1, deadline - Date.now()), () => new Error(`rendezvous on ${host}:${port}: rank 0 accepted the connection but not every rank joined within ${timeoutMs / 1000} s`));
          if (f.kind === KIND.abort) throw new Error(f.payload.toString());
          return;
        } catch (e) {
          this.close();
          throw e;
        }
      }
      if (Date.now() > deadline) throw new Error(`rendezvous: cannot reach rank 0 at ${host}:${port} within ${timeoutMs / 1000} s (${lastErr})`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** The next frame of op `seq` from a link, checked. */
  private async receive(link: Link, seq: number, what: string, timeoutMs: number | null): Promise<Buffer> {
    // Others wait on rank 0 a little longer than rank 0 waits on them, so that a hung rank is
    // named by rank 0's timeout (and its ABORT) rather than blamed on rank 0.
    if (timeoutMs !== null && this.rank !== 0) timeoutMs += RELAY_GRACE_MS;
    const f = await link.next(timeoutMs, () =>
      new Error(`rank ${this.rank}: no word from rank ${link.peer} within ${(timeoutMs ?? 0) / 1000} s in ${what} (op #${seq}): it hangs or is far slower than the others (raise --dist-timeout if this is expected)`),
    );
    if (f.kind === KIND.abort) throw new Error(f.payload.toString());
    if (f.seq !== seq) throw new Error(`rank ${link.peer} sent op #${f.seq} while rank ${this.rank} is in ${what} (op #${seq}): the ranks ran different programs`);
    return f.payload;
  }

  /** Runs one op; any failure aborts the collective for good (others learn why). */
  private async op<T>(what: string, body: (seq: number) => Promise<T>): Promise<T> {
    if (this.error) throw this.error;
    if (this.closed) throw new Error(`${what} on a closed collective`);
    const seq = ++this.seq;
    try {
      return await body(seq);
    } catch (e) {
      this.abort(e as Error);
      throw this.error ?? e;
    }
  }

  allReduce<A extends HostArray>(data: A, op: ReduceOp = "sum", timeoutMs: number | null = this.o.timeoutMs): Promise<A> {
    const what = `allReduce(${op}, ${data.length} x ${data instanceof Float64Array ? "f64" : "f32"})`;
    return this.op(what, async (seq) => {
      if (this.worldSize === 1) return data;
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      if (this.rank !== 0) {
        this.links[0].send(KIND.data, seq, bytes);
        const got = await this.receive(this.links[0], seq, what, timeoutMs);
        bytes.set(got);
        return data;
      }
      const parts = await Promise.all(this.links.slice(1).map((l) => this.receive(l, seq, what, timeoutMs)));
      parts.forEach((p, i) => {
        if (p.byteLength !== data.byteLength) throw new Error(`rank ${i + 1} sent ${p.byteLength} bytes in ${what}, rank 0 has ${data.byteLength}: the ranks disagree on the model or the batch`);
        const other = new (data.constructor as new (n: number) => A)(data.length);
        new Uint8Array(other.buffer).set(p);
        if (op === "sum") for (let j = 0; j < data.length; j++) data[j] += other[j];
        else if (op === "max") for (let j = 0; j < data.length; j++) data[j] = Math.max(data[j], other[j]);
        else for (let j = 0; j < data.length; j++) data[j] = Math.min(data[j], other[j]);
      });
      for (const l of this.links.slice(1)) l.send(KIND.data, seq, bytes);
      return data;
    });
  }

  allReduceTensors(backend: Backend, tensors: Tensor[]): Promise<void> {
    return allReduceTensorsOnHost(this, backend, tensors);
  }

  broadcastBytes(data: Uint8Array | null, timeoutMs: number | null = this.o.timeoutMs): Promise<Uint8Array> {
    return this.op("broadcast", async (seq) => {
      if (this.rank === 0) {
        if (!data) throw new Error("broadcastBytes: rank 0 must pass the data");
        for (const l of this.links.slice(1)) l.send(KIND.data, seq, data);
        return data;
      }
      return new Uint8Array(await this.receive(this.links[0], seq, "broadcast", timeoutMs));
    });
  }

  async barrier(timeoutMs: number | null = this.o.timeoutMs): Promise<void> {
    await this.allReduce(new Float64Array(1), "sum", timeoutMs);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const l of this.links) l?.socket.end();
  }
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host.startsWith("127.");
}
