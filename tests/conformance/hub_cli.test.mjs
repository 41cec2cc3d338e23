// hf-local-hub as a program: command-line validation, clean SIGTERM, Hub state surviving
// kill -9, added latency, and injected faults (5xx and connection resets) that a retrying
// @huggingface/hub client rides through with the server's state left consistent.
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as hub from "@huggingface/hub";
import { USER, TOKEN, binary, startLocalHub, makeDataDir, removeDir } from "./lib/localhub.mjs";

const dirs = [];
const servers = [];
after(async () => {
	for (const s of servers) await s.stop();
	for (const d of dirs) await removeDir(d);
});

async function freshDir() {
	const d = await makeDataDir("hfm-hub-cli-");
	dirs.push(d);
	return d;
}

async function start(dataDir, extraArgs = []) {
	const s = await startLocalHub({ dataDir, extraArgs });
	servers.push(s);
	return s;
}

// Runs the binary to completion (it must exit by itself); resolves to its exit code and output.
function runToExit(args, timeoutMs = 10000) {
	return new Promise((resolve, reject) => {
		const child = spawn(binary(), args, { stdio: ["ignore", "pipe", "pipe"] });
		let output = "";
		child.stdout.on("data", (d) => (output += d));
		child.stderr.on("data", (d) => (output += d));
		const timer = setTimeout(() => {
			child.kill("SIGKILL");
			reject(new Error(`did not exit: ${args.join(" ")}\n${output}`));
		}, timeoutMs);
		child.on("exit", (code) => {
			clearTimeout(timer);
			resolve({ code, output });
		});
	});
}

// fetch that retries injected failures (5xx answers and dropped connections).
function retryingFetch(stats) {
	return async (url, init) => {
		for (let attempt = 0; ; attempt++) {
			try {
				const res = await fetch(url, init);
				if (res.status < 500 || attempt >= 30) return res;
				stats.retries += 1;
			} catch (err) {
				if (attempt >= 30) throw err;
				stats.retries += 1;
			}
		}
	};
}

describe("command line", () => {
	it("rejects bad arguments with exit code 2", async () => {
		const d = await freshDir();
		const bad = [
			["serve", "--data", d, "--port", "0", "--token", "user:not_hf_prefixed"],
			["serve", "--data", d, "--port", "0", "--token", "no-colon"],
			["serve", "--data", d, "--port", "0", "--fault-rate", "0.5", "--faults", "5xx,boom"],
			["serve", "--data", d, "--port", "0", "--token-ttl-secs", "0"],
		];
		for (const args of bad) {
			const { code, output } = await runToExit(args);
			assert.equal(code, 2, `${args.join(" ")} -> ${code}: ${output}`);
			assert.match(output, /error/i);
			assert.doesNotMatch(output, /not_hf_prefixed/, "tokens are not echoed");
		}
		const { code } = await runToExit(["serve", "--port", "0"]);
		assert.notEqual(code, 0, "--data is required");
	});

	it("stops cleanly on SIGTERM", async () => {
		const s = await start(await freshDir());
		const exit = new Promise((resolve) => s.child.once("exit", (code, signal) => resolve({ code, signal })));
		s.child.kill("SIGTERM");
		assert.deepEqual(await exit, { code: 0, signal: null });
	});
});

describe("durability", () => {
	it("keeps buckets, repos and commits across kill -9", async () => {
		const d = await freshDir();
		let s = await start(d);
		const common = { hubUrl: s.url, accessToken: TOKEN };
		await hub.createRepo({ ...common, repo: { type: "bucket", name: `${USER}/kept` } });
		await hub.createRepo({ ...common, repo: { type: "model", name: `${USER}/kept-model` } });
		await hub.uploadFile({
			...common,
			repo: { type: "model", name: `${USER}/kept-model` },
			useXet: false,
			file: { path: "notes/a.txt", content: new Blob(["survives"]) },
		});
		await s.kill9();
		s = await start(d);
		const again = { hubUrl: s.url, accessToken: TOKEN };
		const info = await fetch(`${s.url}/api/buckets/${USER}/kept`);
		assert.equal(info.status, 200);
		const blob = await hub.downloadFile({ ...again, repo: `${USER}/kept-model`, path: "notes/a.txt" });
		assert.equal(await blob.text(), "survives");
	});
});

describe("fault injection", () => {
	it("adds latency to every request", async () => {
		const s = await start(await freshDir(), ["--latency-ms", "150"]);
		const t0 = Date.now();
		const res = await fetch(`${s.url}/api/whoami-v2`, { headers: { Authorization: `Bearer ${TOKEN}` } });
		assert.equal(res.status, 200);
		assert.ok(Date.now() - t0 >= 150);
	});

	it("answers some requests with 5xx", async () => {
		const s = await start(await freshDir(), ["--fault-rate", "0.3", "--faults", "5xx"]);
		const codes = new Set();
		for (let i = 0; i < 80; i++) {
			const res = await fetch(`${s.url}/api/whoami-v2`, { headers: { Authorization: `Bearer ${TOKEN}` } });
			codes.add(res.status);
			await res.arrayBuffer();
		}
		assert.ok(codes.has(200), [...codes].join(","));
		assert.ok([500, 502, 503].some((c) => codes.has(c)), [...codes].join(","));
	});

	it("lets a retrying client finish a commit through 5xx and resets", async () => {
		const s = await start(await freshDir(), ["--fault-rate", "0.3", "--faults", "5xx,reset"]);
		const stats = { retries: 0 };
		const common = { hubUrl: s.url, accessToken: TOKEN, fetch: retryingFetch(stats) };
		// Enough requests that some are certainly hit (0.7^40 < 1e-6), each answered in the end.
		for (let i = 0; i < 40; i++) {
			const res = await common.fetch(`${s.url}/api/whoami-v2`, { headers: { Authorization: `Bearer ${TOKEN}` } });
			assert.equal(res.status, 200);
			await res.arrayBuffer();
		}
		const repo = { type: "model", name: `${USER}/flaky` };
		await hub.createRepo({ ...common, repo });
		const files = Array.from({ length: 12 }, (_, i) => ({ path: `f/${i}.txt`, content: new Blob([`file ${i}`]) }));
		await hub.uploadFiles({ ...common, repo, useXet: false, files });
		const listed = [];
		for await (const e of hub.listFiles({ ...common, repo, recursive: true })) listed.push(e.path);
		for (const f of files) assert.ok(listed.includes(f.path), f.path);
		const blob = await hub.downloadFile({ ...common, repo, path: "f/7.txt" });
		assert.equal(await blob.text(), "file 7");
		assert.ok(stats.retries > 0, "faults were injected");
	});
});
