// The read path under trouble: injected 5xx / resets / truncated bodies, short-lived Xet
// tokens, a hub killed mid-read and restarted, a corrupted chunk-cache file, and the disk
// cache bound. The mount must never serve a wrong byte: either the right bytes or EIO.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { open, readFile, readdir, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import * as hub from "@huggingface/hub";
import { USER, TOKEN, makeDataDir, removeDir } from "./lib/localhub.mjs";
import {
	startMount,
	startHubOnPort,
	makeTempDir,
	removeTree,
	sha256,
	sha256File,
	seededBytes,
	chunkCacheBytes,
	treeFiles,
	fuseUnavailable,
} from "./lib/mount.mjs";

const skip = fuseUnavailable();

const MiB = 1024 * 1024;
let dataDir;
let work;
const cleanups = [];
let mountCount = 0;
const bucket = { type: "bucket", name: `${USER}/faultb` };
const files = {
	"a.bin": seededBytes(24 * MiB + 11, 101),
	"b.bin": seededBytes(3 * MiB, 102),
	"c.bin": seededBytes(20 * MiB, 103),
	"d.bin": seededBytes(20 * MiB, 104),
	"e.bin": seededBytes(20 * MiB, 105),
	"small.bin": seededBytes(5000, 106),
	"dir/f.bin": seededBytes(700_000, 107),
};

async function hubAt(opts) {
	const h = await startHubOnPort({ dataDir, ...opts });
	cleanups.push(() => h.stop());
	return h;
}

async function mount(hubUrl, opts = {}) {
	const name = `m${mountCount++}`;
	const m = await startMount({
		hubUrl,
		kind: "bucket",
		id: bucket.name,
		mountpoint: path.join(work, name),
		cacheDir: opts.cacheDir ?? path.join(work, `${name}-cache`),
		...opts,
	});
	cleanups.push(() => m.stop());
	return m;
}

before(async () => {
	if (skip) return;
	dataDir = await makeDataDir("hfm-mount-faults-");
	work = await makeTempDir("hfm-mount-faults-mnt-");
	const h = await startHubOnPort({ dataDir });
	try {
		const common = { hubUrl: h.url, accessToken: TOKEN };
		await hub.createRepo({ ...common, repo: bucket });
		await hub.uploadFiles({
			...common,
			repo: bucket,
			files: Object.entries(files).map(([p, d]) => ({ path: p, content: new Blob([d]) })),
		});
	} finally {
		await h.stop();
	}
});

after(async () => {
	for (const c of cleanups.reverse()) await c();
	await removeDir(dataDir);
	await removeTree(work);
});

async function assertAllFiles(mp, what) {
	for (const [p, data] of Object.entries(files)) {
		assert.equal((await stat(path.join(mp, p))).size, data.length, `${what}: ${p} size`);
		assert.equal(await sha256File(path.join(mp, p)), sha256(data), `${what}: ${p} content`);
	}
}

describe("injected faults", { skip }, () => {
	it("every byte is identical with 10% 5xx / reset / truncate", async () => {
		const h = await hubAt({ extraArgs: ["--fault-rate", "0.1", "--faults", "5xx,reset,truncate"] });
		const m = await mount(h.url);
		await assertAllFiles(m.mountpoint, "faulty hub");
		// Random preads too (range downloads rather than streams).
		const fh = await open(path.join(m.mountpoint, "a.bin"), "r");
		try {
			const src = files["a.bin"];
			for (let i = 0; i < 100; i++) {
				const pos = Math.floor((i * 7919 * 4099) % src.length);
				const len = 1 + ((i * 104729) % (256 * 1024));
				const buf = Buffer.alloc(len);
				const { bytesRead } = await fh.read(buf, 0, len, pos);
				const want = src.subarray(pos, Math.min(pos + len, src.length));
				assert.equal(bytesRead, want.length);
				assert.ok(buf.subarray(0, bytesRead).equals(want), `pread(${pos}, ${len})`);
			}
		} finally {
			await fh.close();
		}
		await m.stop();
		await h.stop();
	});
});

describe("short-lived xet tokens", { skip }, () => {
	it("a slow sequential read spanning more than 10 s continues with --token-ttl-secs 3", async () => {
		const h = await hubAt({ extraArgs: ["--token-ttl-secs", "3"] });
		const m = await mount(h.url);
		const src = files["a.bin"];
		const fh = await open(path.join(m.mountpoint, "a.bin"), "r");
		const started = Date.now();
		try {
			const buf = Buffer.alloc(MiB);
			let pos = 0;
			let i = 0;
			while (pos < src.length) {
				const { bytesRead } = await fh.read(buf, 0, MiB, pos);
				assert.ok(bytesRead > 0, `read at ${pos} returned 0`);
				assert.ok(buf.subarray(0, bytesRead).equals(src.subarray(pos, pos + bytesRead)), `content at ${pos}`);
				pos += bytesRead;
				// Also a pread far away every few steps: a fresh range fetch after the token expired.
				if (i++ % 5 === 0) {
					const far = (pos * 7 + 12345) % src.length;
					const b2 = Buffer.alloc(4096);
					const r2 = await fh.read(b2, 0, 4096, far);
					assert.ok(b2.subarray(0, r2.bytesRead).equals(src.subarray(far, far + 4096)), `far pread at ${far}`);
				}
				await sleep(450);
			}
		} finally {
			await fh.close();
		}
		const elapsed = Date.now() - started;
		assert.ok(elapsed > 10000, `the read should span more than 10 s, took ${elapsed} ms`);
		await m.stop();
		await h.stop();
	});
});

describe("hub outage", { skip }, () => {
	it("a hub killed mid-read gives EIO, the mount stays alive, and a restarted hub serves again", async () => {
		let h = await hubAt({});
		const port = h.port;
		const m = await mount(h.url, { globalArgs: ["--read-fetch-timeout-ms", "5000"] });
		const mp = m.mountpoint;
		const src = files["c.bin"];
		// Read the first MiB, then kill the hub and keep reading: the data not fetched yet must
		// fail with EIO, and every byte returned before that must be right.
		const fh = await open(path.join(mp, "c.bin"), "r");
		let failure = null;
		let pos = 0;
		try {
			const buf = Buffer.alloc(MiB);
			const first = await fh.read(buf, 0, MiB, 0);
			assert.ok(buf.subarray(0, first.bytesRead).equals(src.subarray(0, first.bytesRead)));
			await h.kill9();
			// Jump well ahead of any read-ahead, then keep going; bounded by the file size.
			for (pos = 12 * MiB; pos < src.length; pos += MiB) {
				try {
					const { bytesRead } = await fh.read(buf, 0, MiB, pos);
					assert.ok(buf.subarray(0, bytesRead).equals(src.subarray(pos, pos + bytesRead)), `content at ${pos} while the hub is down`);
				} catch (e) {
					failure = e;
					break;
				}
			}
		} finally {
			await fh.close();
		}
		assert.ok(failure, "some read must fail while the hub is down");
		assert.equal(failure.code, "EIO", `expected EIO, got ${failure.code}: ${failure.message}`);

		// The mount is alive: listings and stats answer from the cached tree.
		assert.ok(m.alive(), "hf-mount-fuse must still be running");
		assert.ok((await readdir(mp)).includes("c.bin"));
		assert.equal((await stat(path.join(mp, "d.bin"))).size, files["d.bin"].length);

		h = await hubAt({ port });
		assert.equal(h.port, port);
		// Bounded retry: the first attempt may still see a backoff from the outage.
		let got = null;
		for (let i = 0; i < 20 && got === null; i++) {
			try {
				got = await sha256File(path.join(mp, "c.bin"));
			} catch (e) {
				if (e.code !== "EIO") throw e;
				await sleep(500);
			}
		}
		assert.equal(got, sha256(src), "c.bin after the hub came back");
		assert.equal(await sha256File(path.join(mp, "d.bin")), sha256(files["d.bin"]));
		await m.stop();
		await h.stop();
	});
});

describe("chunk cache", { skip }, () => {
	it("a corrupted chunk-cache file is detected and refetched", async () => {
		const h = await hubAt({});
		const cacheDir = path.join(work, "corrupt-cache");
		let m = await mount(h.url, { cacheDir });
		assert.equal(await sha256File(path.join(m.mountpoint, "b.bin")), sha256(files["b.bin"]));
		await m.stop();
		const chunkFiles = await treeFiles(path.join(cacheDir, "chunks"));
		assert.ok(chunkFiles.length > 0, "reading b.bin should have filled <cache-dir>/chunks");
		const corrupted = new Map();
		for (const f of chunkFiles) {
			const bytes = await readFile(f);
			if (bytes.length < 200) continue;
			for (const off of [100, Math.floor(bytes.length / 2), bytes.length - 1]) bytes[off] ^= 0xff;
			await writeFile(f, bytes);
			corrupted.set(f, sha256(bytes));
		}
		assert.ok(corrupted.size > 0, "no cache file large enough to corrupt");

		m = await mount(h.url, { cacheDir });
		assert.equal(await sha256File(path.join(m.mountpoint, "b.bin")), sha256(files["b.bin"]), "content after corruption");
		await m.stop();
		let stillCorrupt = 0;
		for (const [f, digest] of corrupted) {
			try {
				if (sha256(await readFile(f)) === digest) stillCorrupt++;
			} catch {
				// removed: fine
			}
		}
		assert.equal(stillCorrupt, 0, `${stillCorrupt} of ${corrupted.size} corrupted cache files were left in place`);
		await h.stop();
	});

	it("--cache-size 20 MB bounds <cache-dir>/chunks while reading 60 MB of distinct data", async () => {
		const h = await hubAt({});
		const cacheDir = path.join(work, "bounded-cache");
		const chunks = path.join(cacheDir, "chunks");
		const bound = 20_000_000;
		const m = await mount(h.url, { cacheDir, globalArgs: ["--cache-size", String(bound)] });
		// A directory walk is not a snapshot: while the cache evicts and inserts, a walk can count
		// an entry that was evicted after it was seen plus one added later. So the size is read
		// at pauses, once two walks 200 ms apart agree (the cache is then quiescent).
		const settled = async () => {
			let prev = await chunkCacheBytes(chunks);
			for (let i = 0; i < 25; i++) {
				await sleep(200);
				const cur = await chunkCacheBytes(chunks);
				if (cur === prev) return cur;
				prev = cur;
			}
			return null;
		};
		const samples = [];
		for (const p of ["c.bin", "d.bin", "e.bin"]) {
			const src = files[p];
			const fh = await open(path.join(m.mountpoint, p), "r");
			try {
				const buf = Buffer.alloc(2 * MiB);
				for (let pos = 0; pos < src.length; pos += 2 * MiB) {
					const { bytesRead } = await fh.read(buf, 0, 2 * MiB, pos);
					assert.ok(buf.subarray(0, bytesRead).equals(src.subarray(pos, pos + bytesRead)), `${p} at ${pos}`);
					if (pos % (6 * MiB) === 0) samples.push(await settled());
				}
			} finally {
				await fh.close();
			}
			samples.push(await settled());
		}
		const measured = samples.filter((v) => v !== null);
		assert.ok(measured.length >= 6, `the cache never settled long enough to measure: ${JSON.stringify(samples)}`);
		const peak = Math.max(...measured);
		assert.ok(measured[measured.length - 1] > bound / 2, `the cache was used: ${JSON.stringify(samples)}`);
		assert.ok(peak <= bound, `chunk cache held ${peak} bytes, bound ${bound} (samples ${JSON.stringify(samples)})`);
		await m.stop();
		await h.stop();
	});
});
