// Starts and stops hf-local-hub for conformance tests: a fresh (or given) data dir, port 0,
// the URL parsed from what the server prints, and a hard kill as a last resort so no test
// leaves a server behind.
import { spawn } from "node:child_process";
import { mkdtemp, rm, readdir, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { randomBytes as cryptoRandomBytes } from "node:crypto";

export const USER = "user";
export const TOKEN = "hf_conformance_token_0123456789";

const live = new Set();
process.on("exit", () => {
	for (const child of live) child.kill("SIGKILL");
});

export function binary() {
	const dir = process.env.HFM_BIN_DIR;
	if (!dir) throw new Error("HFM_BIN_DIR is not set (run through ctest, or export it)");
	return path.join(dir, "hf-local-hub");
}

export async function makeDataDir(prefix = "hfm-cas-conf-") {
	return mkdtemp(path.join(tmpdir(), prefix));
}

// Starts `hf-local-hub serve` on `dataDir`; resolves to { url, child, stop(), kill9() }.
export async function startLocalHub({ dataDir, extraArgs = [], timeoutMs = 20000 } = {}) {
	const args = ["serve", "--port", "0", "--data", dataDir, "--token", `${USER}:${TOKEN}`, ...extraArgs];
	const child = spawn(binary(), args, { stdio: ["ignore", "pipe", "pipe"] });
	live.add(child);
	let output = "";
	const url = await new Promise((resolve, reject) => {
		const timer = setTimeout(() => {
			child.kill("SIGKILL");
			reject(new Error(`hf-local-hub printed no URL within ${timeoutMs} ms:\n${output}`));
		}, timeoutMs);
		const onData = (data) => {
			output += data.toString();
			const m = output.match(/https?:\/\/(?:127\.0\.0\.1|localhost|\[::1\]):\d+/);
			if (m) {
				clearTimeout(timer);
				resolve(m[0]);
			}
		};
		child.stdout.on("data", onData);
		child.stderr.on("data", onData);
		child.on("exit", (code, signal) => {
			clearTimeout(timer);
			reject(new Error(`hf-local-hub exited (${code ?? signal}) before listening:\n${output}`));
		});
	});
	// Keep draining the pipes so the server never blocks on a full pipe.
	child.stdout.on("data", () => {});
	child.stderr.on("data", (d) => {
		if (process.env.HFM_SERVER_LOG) process.stderr.write(d);
	});
	const exited = new Promise((resolve) => child.once("exit", resolve));
	const stop = async () => {
		if (child.exitCode !== null || child.signalCode !== null) return;
		child.kill("SIGTERM");
		const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
		await exited;
		clearTimeout(timer);
		live.delete(child);
	};
	const kill9 = async () => {
		child.kill("SIGKILL");
		await exited;
		live.delete(child);
	};
	return { url, child, stop, kill9 };
}

export async function removeDir(dir) {
	if (dir) await rm(dir, { recursive: true, force: true });
}

// Deterministic pseudo-random bytes (incompressible, so dedup shows in stored sizes).
export function randomBytes(n, seed = 1) {
	const out = new Uint8Array(n);
	let s = BigInt(seed) * 0x9e3779b97f4a7c15n;
	for (let i = 0; i < n; i += 8) {
		s = (s + 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn;
		let z = s;
		z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & 0xffffffffffffffffn;
		z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & 0xffffffffffffffffn;
		z ^= z >> 31n;
		for (let b = 0; b < 8 && i + b < n; b++) out[i + b] = Number((z >> BigInt(8 * b)) & 0xffn);
	}
	return out;
}

export function fastRandomBytes(n) {
	return new Uint8Array(cryptoRandomBytes(n));
}

// Total bytes of stored xorb blobs under a data dir (to observe deduplication).
export async function storedXorbBytes(dataDir) {
	const root = path.join(dataDir, "cas", "xorbs");
	let total = 0;
	let dirs = [];
	try {
		dirs = await readdir(root);
	} catch {
		return 0;
	}
	for (const d of dirs) {
		for (const f of await readdir(path.join(root, d))) {
			if (f.endsWith(".xorb")) total += (await stat(path.join(root, d, f))).size;
		}
	}
	return total;
}

export async function bytesOf(blob) {
	assertBlob(blob);
	return new Uint8Array(await blob.arrayBuffer());
}

function assertBlob(blob) {
	if (!blob) throw new Error("expected a Blob, got " + blob);
}

// Compares two byte arrays, reporting the first difference instead of dumping megabytes.
export function sameBytes(actual, expected) {
	if (actual.length !== expected.length) return `length ${actual.length} != ${expected.length}`;
	for (let i = 0; i < actual.length; i++) {
		if (actual[i] !== expected[i]) return `first difference at byte ${i}`;
	}
	return "equal";
}
