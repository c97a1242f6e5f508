// A run directory's ownership: what it is (a marker file), who works in it (a lock file), and
// whether it can be written at all — all settled before any compute.
//
//   anvil-run.json   marker: names the directory as an Anvil run; --out into a non-empty
//                    directory without it is refused (it may be a user's model or data)
//   anvil.lock       {pid, host, thread, ...} of the one process training there
//
// The lock is created with O_EXCL, so of two processes only one gets it. kill -9 leaves the
// file behind; a lock whose pid is dead on this host is taken over, so it never stays stale.
// A lock held on another host (a shared filesystem) cannot be checked and is never taken over.
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeSync } from "node:fs";
import { hostname } from "node:os";
import { dirname, join } from "node:path";
import { randomBytes } from "node:crypto";
import { threadId } from "node:worker_threads";

export const RUN_MARKER = "anvil-run.json";
export const LOCK_FILE = "anvil.lock";
const PROBE_PREFIX = ".anvil-probe-";

export class RunDirError extends Error {
  override name = "RunDirError";
}

interface LockInfo {
  pid: number;
  host: string;
  /** Worker thread id inside pid (a TrainingJob runs in a worker of the host process). */
  thread: number;
  started: string;
  command: string;
  /** Distinguishes this lock from a later one by the same pid and thread. */
  token: string;
}

export interface RunDirClaim {
  dir: string;
  /** The directory did not exist before the claim. */
  created: boolean;
  /** Removes the lock (only if it is still ours). */
  release(): void;
  /** For a run that failed before it started: releases, and removes the directories the claim created. */
  discard(): void;
}

/** A directory written by Anvil: the marker, or (runs from before the marker) a config.json of training options. */
export function isRunDir(dir: string): boolean {
  if (existsSync(join(dir, RUN_MARKER))) return true;
  try {
    const cfg = JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as Record<string, unknown>;
    // A model's config.json has model_type / vocab_size; training options have these instead.
    return typeof cfg === "object" && cfg !== null && "algo" in cfg && "groupSize" in cfg && "maxNewTokens" in cfg && !("model_type" in cfg) && !("vocab_size" in cfg);
  } catch {
    return false;
  }
}

/** Throws unless `dir` is an Anvil run (what --resume needs). */
export function requireRunDir(dir: string): void {
  if (!existsSync(dir)) throw new RunDirError(`--resume ${dir}: no such directory`);
  if (!isRunDir(dir))
    throw new RunDirError(
      `--resume ${dir}: not an Anvil run directory (no ${RUN_MARKER}${existsSync(join(dir, "config.json")) ? "; its config.json is not a run's: a model directory?" : ""}). Pass the --out directory of an earlier anvil train.`,
    );
}

/**
 * Claims `dir` for a run: creates it if needed (checking it is writable), takes the lock, and
 * checks what is there: `resume` needs an Anvil run; a fresh run needs an empty directory or an
 * Anvil run. Throws RunDirError with what to do; on failure nothing is left behind.
 */
export function claimRunDir(dir: string, opts: { resume: boolean; log?: (l: string) => void }): RunDirClaim {
  if (opts.resume) requireRunDir(dir);
  const created = makeDirs(dir);
  const removeCreated = () => {
    if (created) rmSync(created, { recursive: true, force: true });
  };
  let lock: LockInfo | null = null;
  try {
    probeWritable(dir);
    lock = takeLock(dir, opts.log ?? (() => {}));
    const contents = readdirSync(dir).filter((e) => !e.startsWith(LOCK_FILE) && !e.startsWith(PROBE_PREFIX));
    if (opts.resume) requireRunDir(dir); // again, now that we hold the lock
    else if (contents.length > 0 && !isRunDir(dir))
      throw new RunDirError(`--out ${dir}: the directory is not empty and is not an Anvil run (no ${RUN_MARKER}); its files would be overwritten. Choose a new or empty --out directory.`);
    if (!existsSync(join(dir, RUN_MARKER))) writeFileExclusive(join(dir, RUN_MARKER), JSON.stringify({ anvil: "run", version: 1, created: new Date().toISOString() }) + "\n");
  } catch (e) {
    if (lock) releaseLock(dir, lock);
    removeCreated();
    throw e;
  }
  const held = lock;
  return {
    dir,
    created: created !== null,
    release: () => releaseLock(dir, held),
    discard: () => {
      releaseLock(dir, held);
      removeCreated();
    },
  };
}

/**
 * Removes the lock of a run that was stopped from outside its thread (TrainingJob.cancel
 * terminates the worker, which cannot clean up): only when pid and thread match.
 */
export function releaseLockOf(dir: string, pid: number, thread: number): void {
  const held = readLock(dir);
  if (held && held.pid === pid && held.thread === thread) releaseLock(dir, held);
}

/**
 * mkdir -p, one level at a time: Node's mkdir {recursive: true} spins forever at 100% CPU on
 * paths under /proc (it retries ENOENT). Returns the topmost directory created, or null.
 */
function makeDirs(dir: string): string | null {
  const missing: string[] = [];
  let p = dir;
  for (;;) {
    let st;
    try {
      st = statSync(p);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOTDIR") throw new RunDirError(`run directory ${dir}: a part of the path is a file, not a directory. Choose another --out.`);
      if (code !== "ENOENT") throw unwritable(dir, e);
      missing.push(p);
      const up = dirname(p);
      if (up === p) throw unwritable(dir, e);
      p = up;
      continue;
    }
    if (!st.isDirectory()) throw new RunDirError(`run directory ${dir}: ${p} exists and is not a directory. Choose another --out.`);
    break;
  }
  let top: string | null = null;
  for (const m of missing.reverse()) {
    try {
      mkdirSync(m);
      top ??= m;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") {
        if (top) rmSync(top, { recursive: true, force: true });
        throw unwritable(dir, e);
      }
    }
  }
  return top;
}

/** Writes and removes a probe file: a read-only or pseudo filesystem fails here, not at step 20. */
function probeWritable(dir: string): void {
  const probe = join(dir, `${PROBE_PREFIX}${process.pid}-${randomBytes(4).toString("hex")}`);
  try {
    writeFileExclusive(probe, "probe\n");
    unlinkSync(probe);
  } catch (e) {
    throw unwritable(dir, e);
  }
}

function unwritable(dir: string, e: unknown): RunDirError {
  const code = (e as NodeJS.ErrnoException).code ?? String(e);
  return new RunDirError(`run directory ${dir} cannot be created or written (${code}; /proc, /sys and read-only filesystems cannot hold a run). Choose a writable --out directory.`);
}

function writeFileExclusive(path: string, text: string): void {
  const fd = openSync(path, "wx");
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
}

function readLock(dir: string): LockInfo | null {
  try {
    return JSON.parse(readFileSync(join(dir, LOCK_FILE), "utf8")) as LockInfo;
  } catch {
    return null; // absent, or torn by a kill during its (tiny) write
  }
}

/** Whether `pid` is a live process on this host. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"; // exists, owned by another user
  }
}

function takeLock(dir: string, log: (l: string) => void): LockInfo {
  const path = join(dir, LOCK_FILE);
  const me: LockInfo = {
    pid: process.pid,
    host: hostname(),
    thread: threadId,
    started: new Date().toISOString(),
    command: process.argv.slice(1).join(" "),
    token: randomBytes(8).toString("hex"),
  };
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      writeFileExclusive(path, JSON.stringify(me) + "\n");
      return me;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw unwritable(dir, e);
    }
    let held = readLock(dir);
    if (!held) {
      // Unreadable: either torn by a kill or being written right now by its owner; look again.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
      held = readLock(dir);
    }
    if (held && (held.host !== me.host || alive(held.pid)))
      throw new RunDirError(
        `run directory ${dir} is in use by pid ${held.pid} on host ${held.host}${held.thread ? ` (thread ${held.thread})` : ""}, since ${held.started}${held.command ? ` (${held.command})` : ""}. ` +
          `Wait for it to finish or stop it, or choose another --out; if that process is gone (e.g. on another host), remove ${path}.`,
      );
    // Dead owner (or a torn lock): move it aside atomically, then check we moved the file we read
    // and not a lock another process took over in the meantime.
    const aside = `${path}.stale-${process.pid}-${me.token}`;
    try {
      renameSync(path, aside);
    } catch {
      continue; // someone else moved it first: try again
    }
    let moved: LockInfo | null = null;
    try {
      moved = JSON.parse(readFileSync(aside, "utf8")) as LockInfo;
    } catch {
      /* torn: stale */
    }
    if (moved && moved.token !== held?.token && alive(moved.pid)) {
      try {
        renameSync(aside, path); // a live lock: put it back
      } catch {
        /* it will show as stale next time */
      }
      continue;
    }
    rmSync(aside, { force: true });
    if (held) log(`anvil: took over ${path} from pid ${held.pid} on ${held.host}, which is no longer running`);
  }
  throw new RunDirError(`run directory ${dir}: could not take ${LOCK_FILE} (other processes keep taking it). Try again.`);
}

function releaseLock(dir: string, mine: LockInfo): void {
  const held = readLock(dir);
  if (held && held.token === mine.token) rmSync(join(dir, LOCK_FILE), { force: true });
}
