// Helpers for the write-path conformance tests: large deterministic source files streamed to
// disk (never held whole in memory), sha256 of a file as the @huggingface/hub client downloads
// it, the bytes hf-local-hub actually stores, and child processes that never block the event
// loop (a mount's stdout/stderr pipes must keep draining while a command writes into it).
import { spawn } from "node:child_process";
import { createCipheriv, createHash } from "node:crypto";
import { open, readdir, stat } from "node:fs/promises";
import path from "node:path";
import * as hub from "@huggingface/hub";

const BLOCK = 1 << 20;

// The AES-128-CTR keystream mount.mjs's seededBytes(n, seed) returns, as a generator of
// blocks of at most 1 MiB (same key derivation, so both produce the same bytes for a seed).
export function* seededBlocks(n, seed) {
	const key = createHash("sha256").update(`hfm-mount-seed-${seed}`).digest().subarray(0, 16);
	const cipher = createCipheriv("aes-128-ctr", key, Buffer.alloc(16));
	const zeros = Buffer.alloc(BLOCK);
	for (let off = 0; off < n; off += BLOCK) {
		const len = Math.min(BLOCK, n - off);
		yield cipher.update(zeros.subarray(0, len));
	}
}

// Writes `n` seeded bytes to `file` (created or truncated), 1 MiB at a time; returns their
// sha256 (hex).
export async function writeSeededFile(file, n, seed) {
	const h = createHash("sha256");
	const fh = await open(file, "w");
	try {
		for (const block of seededBlocks(n, seed)) {
			h.update(block);
			let done = 0;
			while (done < block.length) done += (await fh.write(block, done, block.length - done)).bytesWritten;
		}
	} finally {
		await fh.close();
	}
	return h.digest("hex");
}

// sha256 and size of `p` in `repo` as the JS client downloads it (streamed through its XetBlob,
// or its plain Blob for regular files), or null when the client says the file does not exist.
export async function hubFileDigest(common, repo, p) {
	const blob = await hub.downloadFile({ ...common, repo, path: p });
	if (blob === null) return null;
	const h = createHash("sha256");
	let size = 0;
	for await (const chunk of blob.stream()) {
		h.update(chunk);
		size += chunk.length;
	}
	return { size, sha256: h.digest("hex") };
}

// Every file path in a bucket, as the JS client lists it (sorted).
export async function hubFilePaths(common, repo) {
	const out = [];
	for await (const e of hub.listFiles({ ...common, repo, recursive: true })) {
		if (e.type === "file") out.push(e.path);
	}
	return out.sort();
}

// Bytes hf-local-hub keeps for content: every xorb blob (<data>/cas/xorbs/xx/<hash>.xorb)
// plus every shard (<data>/cas/shards/<id>.shard). The SQLite index is left out: it is a
// few dozen bytes per chunk and its WAL grows and shrinks on its own schedule.
export async function casStoredBytes(dataDir) {
	let total = 0;
	const add = async (dir, suffix) => {
		let entries;
		try {
			entries = await readdir(dir, { withFileTypes: true });
		} catch {
			return;
		}
		for (const e of entries) {
			const p = path.join(dir, e.name);
			if (e.isDirectory()) await add(p, suffix);
			else if (e.isFile() && e.name.endsWith(suffix)) total += (await stat(p)).size;
		}
	};
	await add(path.join(dataDir, "cas", "xorbs"), ".xorb");
	await add(path.join(dataDir, "cas", "shards"), ".shard");
	return total;
}

// Runs `cmd args…` without blocking the event loop; resolves to { status, signal, stdout,
// stderr }. Killed (SIGKILL) after `timeoutMs`, which then shows as signal "SIGKILL".
export function run(cmd, args, { timeoutMs = 120000, cwd, input } = {}) {
	return new Promise((resolve, reject) => {
		const child = spawn(cmd, args, { cwd, stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"] });
		let stdout = "";
		let stderr = "";
		child.stdout.on("data", (d) => {
			if (stdout.length < 1 << 20) stdout += d.toString();
		});
		child.stderr.on("data", (d) => {
			if (stderr.length < 1 << 20) stderr += d.toString();
		});
		const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
		child.on("error", (e) => {
			clearTimeout(timer);
			reject(e);
		});
		child.on("close", (status, signal) => {
			clearTimeout(timer);
			resolve({ status, signal, stdout, stderr });
		});
		if (input !== undefined) child.stdin.end(input);
	});
}
