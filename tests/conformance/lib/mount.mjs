// Starts and stops hf-mount-fuse for the end-to-end read tests: spawns the foreground backend,
// waits until the kernel lists the mount in /proc/mounts AND the root answers a readdir, and
// always tears down (SIGTERM, then SIGKILL plus a lazy fusermount3 -u) so that no test leaves
// a mount or a process behind, even when node exits on an uncaught failure.
import { spawn, spawnSync } from "node:child_process";
import { mkdtemp, readFile, readdir, rm, stat } from "node:fs/promises";
import { createHash, createCipheriv } from "node:crypto";
import { createReadStream, accessSync, constants as fsConstants } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { TOKEN } from "./localhub.mjs";

const liveMounts = new Map(); // child -> mountpoint (null for a hub)
process.on("exit", () => {
	for (const [child, mp] of liveMounts) {
		try {
			child.kill("SIGKILL");
		} catch {}
		if (mp) spawnSync("fusermount3", ["-u", "-z", mp], { stdio: "ignore", timeout: 5000 });
	}
});

export function fuseBinary() {
	const dir = process.env.HFM_BIN_DIR;
	if (!dir) throw new Error("HFM_BIN_DIR is not set (run through ctest, or export it)");
	return path.join(dir, "hf-mount-fuse");
}

export async function makeTempDir(prefix) {
	return mkdtemp(path.join(tmpdir(), prefix));
}

// Whether `mountpoint` is currently a mount point according to /proc/mounts.
export async function isMounted(mountpoint) {
	const text = await readFile("/proc/mounts", "utf8");
	return text.split("\n").some((line) => line.split(" ")[1] === mountpoint);
}

// Unmounts lazily whatever is mounted at `mountpoint` (no error if nothing is).
export function forceUnmount(mountpoint) {
	spawnSync("fusermount3", ["-u", "-z", mountpoint], { stdio: "ignore", timeout: 10000 });
	spawnSync("umount", ["-l", mountpoint], { stdio: "ignore", timeout: 10000 });
}

// Spawns `hf-mount-fuse <kind> <id> <mountpoint> [...]` and resolves once the mount answers.
// Resolves to { child, mountpoint, cacheDir, log(), stop(), alive() }.
export async function startMount({
	hubUrl,
	kind = "bucket",
	id,
	mountpoint,
	cacheDir,
	revision,
	globalArgs = [],
	token = TOKEN,
	timeoutMs = 60000,
}) {
	const args = ["--hf-token", token, "--hub-endpoint", hubUrl, "--cache-dir", cacheDir, ...globalArgs, kind, id, mountpoint];
	if (revision) args.push("--revision", revision);
	const child = spawn(fuseBinary(), args, { stdio: ["ignore", "pipe", "pipe"] });
	liveMounts.set(child, mountpoint);
	let output = "";
	let exitInfo = null;
	const onData = (d) => {
		output += d.toString();
		if (output.length > 4_000_000) output = output.slice(-2_000_000);
		if (process.env.HFM_MOUNT_LOG) process.stderr.write(d);
	};
	child.stdout.on("data", onData);
	child.stderr.on("data", onData);
	const exited = new Promise((resolve) =>
		child.once("exit", (code, signal) => {
			exitInfo = { code, signal };
			resolve(exitInfo);
		}),
	);

	const stop = async () => {
		if (exitInfo === null) {
			child.kill("SIGTERM");
			const timer = setTimeout(() => child.kill("SIGKILL"), 10000);
			await exited;
			clearTimeout(timer);
		}
		const stillMounted = await isMounted(mountpoint);
		if (stillMounted) forceUnmount(mountpoint);
		liveMounts.delete(child);
		return { ...exitInfo, stillMounted };
	};

	const deadline = Date.now() + timeoutMs;
	for (;;) {
		if (exitInfo !== null) {
			liveMounts.delete(child);
			throw new Error(`hf-mount-fuse exited (${exitInfo.code ?? exitInfo.signal}) before mounting:\n${output}`);
		}
		if (await isMounted(mountpoint)) {
			try {
				await readdir(mountpoint);
				break;
			} catch {
				// not answering yet
			}
		}
		if (Date.now() > deadline) {
			await stop();
			throw new Error(`hf-mount-fuse did not mount ${mountpoint} within ${timeoutMs} ms:\n${output}`);
		}
		await sleep(50);
	}
	return {
		child,
		mountpoint,
		cacheDir,
		log: () => output,
		stop,
		alive: () => exitInfo === null,
	};
}

export async function removeTree(dir) {
	if (dir) await rm(dir, { recursive: true, force: true });
}

export function sha256(bytes) {
	return createHash("sha256").update(bytes).digest("hex");
}

// sha256 of a file, streamed (so a 100 MiB file read through the mount is read sequentially).
export async function sha256File(file) {
	const h = createHash("sha256");
	for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) h.update(chunk);
	return h.digest("hex");
}

// Deterministic, fast, incompressible bytes: AES-128-CTR keystream under a key derived from
// `seed` (the BigInt generator in localhub.mjs is too slow for 100 MiB).
export function seededBytes(n, seed = 1) {
	const key = createHash("sha256").update(`hfm-mount-seed-${seed}`).digest().subarray(0, 16);
	const cipher = createCipheriv("aes-128-ctr", key, Buffer.alloc(16));
	const out = Buffer.alloc(n);
	const block = 1 << 20;
	for (let off = 0; off < n; off += block) {
		const len = Math.min(block, n - off);
		cipher.update(Buffer.alloc(len)).copy(out, off);
	}
	return new Uint8Array(out.buffer, out.byteOffset, n);
}

// Every file under `root` (relative paths, sorted) and every directory (with a trailing "/").
export async function walk(root) {
	const out = [];
	const visit = async (rel) => {
		const entries = await readdir(path.join(root, rel), { withFileTypes: true });
		for (const e of entries) {
			const r = rel ? `${rel}/${e.name}` : e.name;
			if (e.isDirectory()) {
				out.push(`${r}/`);
				await visit(r);
			} else out.push(r);
		}
	};
	await visit("");
	return out.sort();
}

// The set of paths (files and their ancestor directories, dirs with "/") a file map implies.
export function expectedTree(paths) {
	const out = new Set();
	for (const p of paths) {
		out.add(p);
		const parts = p.split("/");
		for (let i = 1; i < parts.length; i++) out.add(parts.slice(0, i).join("/") + "/");
	}
	return [...out].sort();
}

// Polls `probe` (an async function returning truthy when done) every `intervalMs` until
// `timeoutMs`; returns the last truthy value or throws with `what`.
export async function waitFor(probe, { timeoutMs = 30000, intervalMs = 200, what = "condition" } = {}) {
	const deadline = Date.now() + timeoutMs;
	let lastError;
	for (;;) {
		try {
			const v = await probe();
			if (v) return v;
		} catch (e) {
			lastError = e;
		}
		if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${lastError.message}` : ""}`);
		await sleep(intervalMs);
	}
}

// Total bytes of regular files under `dir` (recursively); 0 if it does not exist.
export async function treeBytes(dir) {
	let total = 0;
	let entries;
	try {
		entries = await readdir(dir, { withFileTypes: true });
	} catch {
		return 0;
	}
	for (const e of entries) {
		const p = path.join(dir, e.name);
		if (e.isDirectory()) total += await treeBytes(p);
		else if (e.isFile()) {
			try {
				total += (await stat(p)).size;
			} catch {}
		}
	}
	return total;
}

// Regular files under `dir` (absolute paths).
export async function treeFiles(dir) {
	const out = [];
	let entries;
	try {
		entries = await readdir(dir, { withFileTypes: true });
	} catch {
		return out;
	}
	for (const e of entries) {
		const p = path.join(dir, e.name);
		if (e.isDirectory()) out.push(...(await treeFiles(p)));
		else if (e.isFile()) out.push(p);
	}
	return out;
}

// Like localhub.mjs's startLocalHub, but on a chosen port (so a killed hub can be restarted
// on the same address); retries a busy port for a few seconds. Resolves to
// { url, port, child, stop(), kill9() }.
export async function startHubOnPort({ dataDir, port = 0, extraArgs = [], timeoutMs = 20000 }) {
	const { binary, USER } = await import("./localhub.mjs");
	for (let attempt = 0; ; attempt++) {
		const args = ["serve", "--port", String(port), "--data", dataDir, "--token", `${USER}:${TOKEN}`, ...extraArgs];
		const child = spawn(binary(), args, { stdio: ["ignore", "pipe", "pipe"] });
		liveMounts.set(child, null);
		let output = "";
		let exited = false;
		const exitP = new Promise((resolve) =>
			child.once("exit", () => {
				exited = true;
				resolve();
			}),
		);
		try {
			const url = await new Promise((resolve, reject) => {
				const timer = setTimeout(() => reject(new Error(`hf-local-hub printed no URL within ${timeoutMs} ms:\n${output}`)), timeoutMs);
				const onData = (d) => {
					output += d.toString();
					if (process.env.HFM_SERVER_LOG) process.stderr.write(d);
					const mm = output.match(/https?:\/\/127\.0\.0\.1:(\d+)/);
					if (mm) {
						clearTimeout(timer);
						resolve(mm[0]);
					}
				};
				child.stdout.on("data", onData);
				child.stderr.on("data", onData);
				exitP.then(() => {
					clearTimeout(timer);
					reject(new Error(`hf-local-hub exited before listening:\n${output}`));
				});
			});
			const stop = async (signal = "SIGTERM") => {
				if (!exited) {
					child.kill(signal);
					const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
					await exitP;
					clearTimeout(timer);
				}
				liveMounts.delete(child);
			};
			return { url, port: Number(new URL(url).port), child, stop, kill9: () => stop("SIGKILL") };
		} catch (e) {
			child.kill("SIGKILL");
			await exitP;
			liveMounts.delete(child);
			if (attempt >= 20 || port === 0) throw e;
			await sleep(250); // port still held by the previous instance
		}
	}
}

// Bytes under a chunk-cache dir (<cache-dir>/chunks), measured while the cache may be
// changing: the entry directories are walked first and the staging dir "tmp" last, so an
// entry renamed from tmp/ into place during the walk is never counted twice (it may be
// missed, so a sample is a lower bound of what was on disk — never an overestimate).
export async function chunkCacheBytes(dir) {
	let names;
	try {
		names = await readdir(dir, { withFileTypes: true });
	} catch {
		return 0;
	}
	const order = [...names.filter((e) => e.name !== "tmp"), ...names.filter((e) => e.name === "tmp")];
	let total = 0;
	for (const e of order) {
		const p = path.join(dir, e.name);
		if (e.isDirectory()) total += await treeBytes(p);
		else if (e.isFile()) {
			try {
				total += (await stat(p)).size;
			} catch {}
		}
	}
	return total;
}

// Drops the kernel page cache (root only) so the next reads go through FUSE again instead of
// being served from pages an earlier test cached; false when not permitted.
export async function dropPageCache() {
	spawnSync("sync", [], { stdio: "ignore", timeout: 60000 });
	try {
		const { writeFile } = await import("node:fs/promises");
		await writeFile("/proc/sys/vm/drop_caches", "3");
		return true;
	} catch {
		return false;
	}
}

// Why FUSE mounts cannot run here (no /dev/fuse access, or no fusermount3 for a non-root
// user), or false when they can. Tests pass it as `skip` so a host without FUSE reports
// skipped tests with the reason instead of failing.
export function fuseUnavailable() {
	try {
		accessSync("/dev/fuse", fsConstants.R_OK | fsConstants.W_OK);
	} catch (e) {
		return `FUSE unavailable: /dev/fuse: ${e.code}`;
	}
	if (process.getuid?.() !== 0 && spawnSync("fusermount3", ["-V"], { stdio: "ignore" }).status !== 0) {
		return "FUSE unavailable: not root and no fusermount3";
	}
	return false;
}
