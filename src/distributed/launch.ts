// Starting a data-parallel run, as torchrun does:
//   single node   `anvil train --nproc N ...` forks N ranks of the same command on loopback;
//   multi-node    one `anvil train` per rank with --rank, --world-size and --master-addr
//                 host:port (rank 0's address), or torchrun's environment variables RANK,
//                 WORLD_SIZE, MASTER_ADDR, MASTER_PORT (flags win over the environment).
// When one rank fails, the launcher stops the others and exits with its code (torchrun's
// behaviour): the run is resumed from its last checkpoint with --resume.
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { availableParallelism } from "node:os";
import type { Collective } from "./collective.js";
import { SoloCollective } from "./collective.js";
import { TcpCollective } from "./tcp.js";

/** torch.distributed's default rendezvous port. */
export const DEFAULT_MASTER_PORT = 29500;
/** Longest wait for a peer within a collective, like torch.distributed's default (30 min). */
export const DEFAULT_TIMEOUT_S = 1800;
/** How long the other ranks get to notice a failed rank by themselves before SIGTERM. */
const STOP_GRACE_MS = 10_000;

export interface DistFlags {
  rank?: number;
  worldSize?: number;
  /** host or host:port of rank 0. */
  masterAddr?: string;
  /** Seconds. */
  distTimeout?: number;
}

export interface DistSpec {
  rank: number;
  worldSize: number;
  host: string;
  port: number;
  timeoutMs: number;
}

export class LaunchError extends Error {
  override name = "LaunchError";
}

function intFrom(what: string, v: string | number | undefined, min: number): number | undefined {
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new LaunchError(`${what} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  return n;
}

/** The run's place in a data-parallel world from flags and the environment; null: one process. */
export function resolveDistSpec(flags: DistFlags, env: NodeJS.ProcessEnv = process.env): DistSpec | null {
  const worldSize = intFrom("--world-size (WORLD_SIZE)", flags.worldSize ?? env.WORLD_SIZE, 1);
  const rank = intFrom("--rank (RANK)", flags.rank ?? env.RANK, 0);
  const timeoutS = flags.distTimeout ?? DEFAULT_TIMEOUT_S;
  if (!(timeoutS > 0)) throw new LaunchError(`--dist-timeout must be a number of seconds > 0, got ${timeoutS}`);
  if (worldSize === undefined && rank === undefined) return null;
  if (worldSize === undefined || rank === undefined) throw new LaunchError("data parallel needs both --rank and --world-size (or RANK and WORLD_SIZE)");
  if (rank >= worldSize) throw new LaunchError(`--rank ${rank} must be < --world-size ${worldSize}`);
  if (worldSize === 1) return null;
  const addr = flags.masterAddr ?? env.MASTER_ADDR;
  if (!addr) throw new LaunchError(`data parallel over ${worldSize} ranks needs rank 0's address: --master-addr host:port (or MASTER_ADDR and MASTER_PORT)`);
  const m = /^(\[[^\]]+\]|[^:]+|[0-9a-fA-F:]+)(?::(\d+))?$/.exec(addr.trim());
  if (!m) throw new LaunchError(`--master-addr must be host or host:port, got "${addr}"`);
  const host = m[1].replace(/^\[|\]$/g, "");
  const port = intFrom("the rendezvous port (--master-addr host:PORT or MASTER_PORT)", m[2] ?? env.MASTER_PORT ?? DEFAULT_MASTER_PORT, 1);
  if (port! > 65535) throw new LaunchError(`the rendezvous port must be <= 65535, got ${port}`);
  return { rank, worldSize, host, port: port!, timeoutMs: timeoutS * 1000 };
}

/** Joins the world described by `spec`: the TCP collective (NCCL is not wired yet: see README). */
export async function joinWorld(spec: DistSpec | null): Promise<Collective> {
  if (!spec) return new SoloCollective();
  return TcpCollective.connect(spec);
}

/** A TCP port free on loopback now (the rendezvous port of --nproc). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve, reject) => s.once("error", reject).listen(0, "127.0.0.1", resolve));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** argv without `--nproc N` / `--nproc=N`. */
export function withoutNproc(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--nproc") i++;
    else if (!args[i].startsWith("--nproc=")) out.push(args[i]);
  }
  return out;
}

/**
 * Runs `nproc` ranks of this command (process.argv without --nproc) on loopback and waits for
 * them. Rank 0's stdout is ours (for --json); the others' output goes to stderr. Returns the
 * exit code: 0 when every rank succeeded, else the first failure's (the others are stopped).
 */
export async function launchLocal(nproc: number, log: (l: string) => void, argv: string[] = process.argv): Promise<number> {
  const port = await freePort();
  const args = [...process.execArgv, argv[1], ...withoutNproc(argv.slice(2))];
  // As torchrun does: ranks sharing the cores must not each start a thread per core (--threads
  // and a user's OMP_NUM_THREADS win).
  const threads = process.env.OMP_NUM_THREADS ?? String(Math.max(1, Math.floor(availableParallelism() / nproc)));
  const children: ChildProcess[] = [];
  for (let rank = 0; rank < nproc; rank++) {
    const env = { ...process.env, OMP_NUM_THREADS: threads, RANK: String(rank), LOCAL_RANK: String(rank), WORLD_SIZE: String(nproc), MASTER_ADDR: "127.0.0.1", MASTER_PORT: String(port) };
    children.push(spawn(process.execPath, args, { env, stdio: ["ignore", rank === 0 ? "inherit" : 2, "inherit"] }));
  }
  log(`anvil: launched ${nproc} ranks on 127.0.0.1:${port} (pids ${children.map((c) => c.pid).join(", ")}), OMP_NUM_THREADS=${threads}`);
  const forward = (sig: NodeJS.Signals) => () => children.forEach((c) => c.exitCode === null && c.kill(sig));
  const onInt = forward("SIGINT");
  const onTerm = forward("SIGTERM");
  process.on("SIGINT", onInt).on("SIGTERM", onTerm);
  let failure: number | null = null;
  await Promise.all(
    children.map(
      (child, rank) =>
        new Promise<void>((resolve) => {
          child.on("exit", (code, signal) => {
            if ((code !== 0 || signal) && failure === null) {
              failure = code || 1;
              log(`anvil: rank ${rank} (pid ${child.pid}) ${signal ? `was killed by ${signal}` : `exited with code ${code}`}: stopping the other ranks (a run with a checkpoint continues with --resume)`);
              // The others fail on their own at their next collective (and say why); stop the rest.
              const stop = () => children.forEach((c) => c.exitCode === null && c.signalCode === null && c.kill("SIGTERM"));
              setTimeout(stop, STOP_GRACE_MS).unref();
            }
            resolve();
          });
        }),
    ),
  );
  process.off("SIGINT", onInt).off("SIGTERM", onTerm);
  return failure ?? 0;
}
