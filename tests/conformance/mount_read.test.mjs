// End-to-end read path: @huggingface/hub uploads through hf-local-hub (xet), hf-mount-fuse
// mounts the bucket / repo, and every byte read through the kernel (read, pread, mmap, 8
// concurrent readers) is compared with what was uploaded. Also: a subfolder mount, a model
// repo at two revisions (read-only: EROFS), and remote changes picked up by the poller.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { open, readFile, readdir, stat, writeFile, mkdir, unlink, rename } from "node:fs/promises";
import path from "node:path";
import * as hub from "@huggingface/hub";
import { USER, TOKEN, startLocalHub, makeDataDir, removeDir } from "./lib/localhub.mjs";
import {
	startMount,
	makeTempDir,
	removeTree,
	sha256,
	sha256File,
	seededBytes,
	walk,
	expectedTree,
	waitFor,
	dropPageCache,
	fuseUnavailable,
} from "./lib/mount.mjs";

const skip = fuseUnavailable();

const MiB = 1024 * 1024;
let server;
let dataDir;
let work; // temp dir holding mountpoints and cache dirs
const mounts = [];
const common = () => ({ hubUrl: server.url, accessToken: TOKEN });

async function mount(opts) {
	const name = `m${mounts.length}`;
	const m = await startMount({
		hubUrl: server.url,
		mountpoint: path.join(work, name),
		cacheDir: path.join(work, `${name}-cache`),
		...opts,
	});
	mounts.push(m);
	return m;
}

async function upload(repo, files) {
	return hub.uploadFiles({
		...common(),
		repo,
		files: Object.entries(files).map(([p, data]) => ({ path: p, content: new Blob([data]) })),
	});
}

async function expectErrno(promise, code, what) {
	await assert.rejects(promise, (e) => {
		assert.equal(e.code, code, `${what}: expected ${code}, got ${e.code} (${e.message})`);
		return true;
	});
}

// The bucket's content, keyed by path.
const bucket = { type: "bucket", name: `${USER}/readb` };
const files = {
	"empty.bin": new Uint8Array(0),
	"one.bin": Uint8Array.of(0x5a),
	"small.bin": seededBytes(8 * 1024, 1),
	"medium.bin": seededBytes(1 * MiB, 2),
	"big.bin": seededBytes(100 * MiB, 3), // more than one 64 MiB xorb
	"nested/a.txt": new TextEncoder().encode("hello from a nested file\n"),
	"nested/deep/b.bin": seededBytes(300_000, 4),
	"nested/deep/deeper/c.bin": seededBytes(70_001, 5),
	"sub/x.bin": seededBytes(200_000, 6),
	"sub/inner/y.bin": seededBytes(5 * MiB + 3, 7),
	"sub/inner/z.txt": new TextEncoder().encode("z\n"),
};

before(async () => {
	if (skip) return;
	dataDir = await makeDataDir("hfm-mount-read-");
	work = await makeTempDir("hfm-mount-read-mnt-");
	server = await startLocalHub({ dataDir });
	await hub.createRepo({ ...common(), repo: bucket });
	await upload(bucket, files);
});

after(async () => {
	for (const m of mounts) await m.stop();
	await server?.stop();
	await removeDir(dataDir);
	await removeTree(work);
});

describe("bucket mount", { skip }, () => {
	let m;
	before(async () => {
		m = await mount({ kind: "bucket", id: bucket.name });
	});

	it("the upload spans more than one xorb (100 MiB > the 64 MiB xorb limit)", async () => {
		const root = path.join(dataDir, "cas", "xorbs");
		let count = 0;
		for (const d of await readdir(root)) count += (await readdir(path.join(root, d))).filter((f) => f.endsWith(".xorb")).length;
		assert.ok(count >= 2, `expected at least 2 xorbs, found ${count}`);
	});

	it("lists exactly the uploaded tree (readdir and find) with the right sizes", async () => {
		assert.deepEqual(await walk(m.mountpoint), expectedTree(Object.keys(files)));
		const found = spawnSync("find", [m.mountpoint, "-mindepth", "1", "-printf", "%P %y %s\\n"], {
			encoding: "utf8",
			timeout: 60000,
		});
		assert.equal(found.status, 0, found.stderr);
		const lines = found.stdout.trim().split("\n").sort();
		const expected = expectedTree(Object.keys(files))
			.map((p) => (p.endsWith("/") ? `${p.slice(0, -1)} d` : `${p} f ${files[p].length}`))
			.sort();
		assert.deepEqual(
			lines.map((l) => (l.split(" ")[1] === "d" ? l.split(" ").slice(0, 2).join(" ") : l)),
			expected,
		);
		const ls = spawnSync("ls", ["-lR", "--time-style=+%s", m.mountpoint], { encoding: "utf8", timeout: 60000 });
		assert.equal(ls.status, 0, ls.stderr);
		// "dir:" headers, then "mode links user group size mtime name" lines.
		const lsSizes = {};
		let dir = "";
		for (const line of ls.stdout.split("\n")) {
			if (line.endsWith(":")) dir = path.relative(m.mountpoint, line.slice(0, -1));
			const f = line.trim().split(/\s+/);
			if (f.length === 7 && line.startsWith("-")) lsSizes[dir ? `${dir}/${f[6]}` : f[6]] = Number(f[4]);
		}
		assert.deepEqual(lsSizes, Object.fromEntries(Object.entries(files).map(([p, d]) => [p, d.length])));
		for (const [p, data] of Object.entries(files)) {
			const st = await stat(path.join(m.mountpoint, p));
			assert.ok(st.isFile(), `${p} is a file`);
			assert.equal(st.size, data.length, `${p} size`);
		}
		assert.ok((await stat(path.join(m.mountpoint, "nested/deep"))).isDirectory());
	});

	it("1000 random preads match the source", async () => {
		let rng = 12345;
		const next = () => {
			rng = (Math.imul(rng, 1103515245) + 12345) >>> 0;
			return rng;
		};
		const targets = ["big.bin", "medium.bin", "sub/inner/y.bin", "small.bin"];
		const handles = Object.fromEntries(
			await Promise.all(targets.map(async (t) => [t, await open(path.join(m.mountpoint, t), "r")])),
		);
		try {
			for (let i = 0; i < 1000; i++) {
				const t = targets[i % targets.length];
				const src = files[t];
				const pos = (next() * 4096 + next()) % (src.length + 10); // sometimes past EOF
				const len = 1 + (next() % (i % 10 === 0 ? 2 * MiB : 64 * 1024));
				const buf = Buffer.alloc(len);
				const { bytesRead } = await handles[t].read(buf, 0, len, pos);
				const want = src.subarray(Math.min(pos, src.length), Math.min(pos + len, src.length));
				assert.equal(bytesRead, want.length, `${t} pread(${pos}, ${len}) length`);
				assert.ok(buf.subarray(0, bytesRead).equals(want), `${t} pread(${pos}, ${len}) content`);
			}
		} finally {
			for (const h of Object.values(handles)) await h.close();
		}
	});

	it("8 concurrent readers of the same large file see the right bytes", async () => {
		await dropPageCache(); // so the readers go through FUSE, not pages the preads cached
		const src = files["big.bin"];
		const slice = Math.ceil(src.length / 8);
		await Promise.all(
			Array.from({ length: 8 }, async (_, r) => {
				const fh = await open(path.join(m.mountpoint, "big.bin"), "r");
				try {
					// Each reader walks the whole file starting from its own eighth, wrapping around.
					const buf = Buffer.alloc(MiB);
					for (let done = 0; done < src.length; ) {
						const pos = (r * slice + done) % src.length;
						const len = Math.min(MiB, src.length - pos, src.length - done);
						const { bytesRead } = await fh.read(buf, 0, len, pos);
						assert.equal(bytesRead, len, `reader ${r} at ${pos}`);
						assert.ok(buf.subarray(0, len).equals(src.subarray(pos, pos + len)), `reader ${r} content at ${pos}`);
						done += len;
					}
				} finally {
					await fh.close();
				}
			}),
		);
	});

	it("sha256 of every file read through the mount equals the source", async () => {
		await dropPageCache();
		for (const [p, data] of Object.entries(files)) {
			assert.equal(await sha256File(path.join(m.mountpoint, p)), sha256(data), p);
		}
	});

	it("mmap reads match the source", async () => {
		await dropPageCache();
		const script = [
			"import hashlib, json, mmap, sys",
			"out = []",
			"for f, ranges in json.loads(sys.argv[1]):",
			"    with open(f, 'rb') as fh:",
			"        m = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)",
			"        out.append([hashlib.sha256(m[a:b]).hexdigest() for a, b in ranges])",
			"        m.close()",
			"print(json.dumps(out))",
		].join("\n");
		const big = files["big.bin"].length;
		const jobs = [
			["big.bin", [[0, big], [4095, 4097], [64 * MiB - 100, 64 * MiB + 100], [big - 1, big], [33 * MiB + 7, 90 * MiB]]],
			["medium.bin", [[0, MiB], [123, 456]]],
			["nested/deep/deeper/c.bin", [[0, 70_001], [70_000, 70_001]]],
		];
		const arg = JSON.stringify(jobs.map(([p, r]) => [path.join(m.mountpoint, p), r]));
		const res = spawnSync("python3", ["-c", script, arg], { encoding: "utf8", timeout: 300000, maxBuffer: 1 << 20 });
		assert.equal(res.status, 0, res.stderr);
		const got = JSON.parse(res.stdout);
		jobs.forEach(([p, ranges], i) => {
			ranges.forEach(([a, b], j) => assert.equal(got[i][j], sha256(files[p].subarray(a, b)), `${p} mmap [${a}, ${b})`));
		});
	});

	it("a missing path is ENOENT", async () => {
		await expectErrno(stat(path.join(m.mountpoint, "nope.bin")), "ENOENT", "stat nope.bin");
		await expectErrno(readFile(path.join(m.mountpoint, "nested/nope")), "ENOENT", "read nested/nope");
	});
});

describe("subfolder mount", { skip }, () => {
	it("shows only the subfolder, with the right bytes", async () => {
		const m = await mount({ kind: "bucket", id: `${bucket.name}/sub` });
		const inSub = Object.keys(files)
			.filter((p) => p.startsWith("sub/"))
			.map((p) => p.slice(4));
		assert.deepEqual(await walk(m.mountpoint), expectedTree(inSub));
		for (const p of inSub) {
			assert.equal(await sha256File(path.join(m.mountpoint, p)), sha256(files[`sub/${p}`]), p);
		}
		await expectErrno(stat(path.join(m.mountpoint, "big.bin")), "ENOENT", "big.bin outside the subfolder");
		// SIGTERM unmounts cleanly: exit status 0 and no mount left behind.
		const exit = await m.stop();
		assert.deepEqual(exit, { code: 0, signal: null, stillMounted: false }, m.log().slice(-2000));
	});
});

describe("model repo at a revision", { skip }, () => {
	const model = { type: "model", name: `${USER}/readm` };
	const v1 = {
		"README.md": new TextEncoder().encode("# v1\n"),
		"weights.bin": seededBytes(3 * MiB, 20),
		"dir/old.txt": new TextEncoder().encode("old file\n"),
	};
	const v2 = {
		"README.md": new TextEncoder().encode("# second version\n"),
		"weights.bin": seededBytes(3 * MiB, 21), // same size, other bytes
		"dir/new.bin": seededBytes(400_000, 22),
	};
	let sha1;
	let sha2;

	before(async () => {
		await hub.createRepo({ ...common(), repo: model });
		sha1 = (await upload(model, v1))?.commit?.oid;
		const second = await hub.commit({
			...common(),
			repo: model,
			title: "v2",
			operations: [
				...["README.md", "weights.bin", "dir/new.bin"].map((p) => ({
					operation: "addOrUpdate",
					path: p,
					content: new Blob([v2[p]]),
				})),
				{ operation: "delete", path: "dir/old.txt" },
			],
		});
		sha2 = second?.commit?.oid;
		assert.match(sha1 ?? "", /^[0-9a-f]{40}$/);
		assert.match(sha2 ?? "", /^[0-9a-f]{40}$/);
		assert.notEqual(sha1, sha2);
	});

	for (const [label, rev, content] of [
		["the first commit's sha", () => sha1, v1],
		["the branch", () => "main", v2],
	]) {
		it(`mounted at ${label} shows that revision's content`, async () => {
			const m = await mount({ kind: "repo", id: model.name, revision: rev() });
			const tree = (await walk(m.mountpoint)).filter((p) => !p.startsWith(".git"));
			assert.deepEqual(tree, expectedTree(Object.keys(content)));
			for (const [p, data] of Object.entries(content)) {
				assert.equal((await stat(path.join(m.mountpoint, p))).size, data.length, `${p} size`);
				assert.equal(await sha256File(path.join(m.mountpoint, p)), sha256(data), `${p} content`);
			}
		});
	}

	it("writes on a repo mount fail with EROFS", async () => {
		const m = await mount({ kind: "repo", id: model.name, revision: "main" });
		const mp = m.mountpoint;
		await expectErrno(writeFile(path.join(mp, "created.txt"), "x"), "EROFS", "create");
		await expectErrno(open(path.join(mp, "README.md"), "r+"), "EROFS", "open r+");
		await expectErrno(writeFile(path.join(mp, "README.md"), "x"), "EROFS", "truncate-write");
		await expectErrno(unlink(path.join(mp, "README.md")), "EROFS", "unlink");
		await expectErrno(mkdir(path.join(mp, "newdir")), "EROFS", "mkdir");
		await expectErrno(rename(path.join(mp, "README.md"), path.join(mp, "R.md")), "EROFS", "rename");
		// And nothing changed.
		assert.equal(await sha256File(path.join(mp, "README.md")), sha256(v2["README.md"]));
	});
});

describe("remote changes with polling", { skip }, () => {
	const live = { type: "bucket", name: `${USER}/liveb` };
	const initial = {
		"keep.bin": seededBytes(100_000, 30),
		"same-size.bin": seededBytes(500_000, 31),
		"grow.bin": seededBytes(10_000, 32),
		"del.bin": seededBytes(20_000, 33),
		"dir/x.bin": seededBytes(30_000, 34),
	};
	const updates = {
		"same-size.bin": seededBytes(500_000, 41), // changed, same size
		"grow.bin": seededBytes(1_234_567, 42), // changed, other size
		"added.bin": seededBytes(77_777, 43),
		"dir/added.txt": new TextEncoder().encode("added later\n"),
		"newdir/n.bin": seededBytes(5_000, 44),
	};

	it("a file changed, added and deleted remotely shows up after a poll", async () => {
		await hub.createRepo({ ...common(), repo: live });
		await upload(live, initial);
		const m = await mount({
			kind: "bucket",
			id: live.name,
			globalArgs: ["--poll-interval-secs", "1", "--metadata-ttl-ms", "500"],
		});
		const mp = m.mountpoint;
		assert.deepEqual(await walk(mp), expectedTree(Object.keys(initial)));
		for (const [p, data] of Object.entries(initial)) {
			assert.equal(await sha256File(path.join(mp, p)), sha256(data), `${p} before`);
		}

		await upload(live, updates);
		await hub.deleteFile({ ...common(), repo: live, path: "del.bin" });
		const now = { ...initial, ...updates };
		delete now["del.bin"];

		const want = expectedTree(Object.keys(now));
		await waitFor(async () => JSON.stringify(await walk(mp)) === JSON.stringify(want), {
			timeoutMs: 30000,
			intervalMs: 250,
			what: "the listing to show the remote changes",
		});
		await waitFor(
			async () => {
				for (const p of ["same-size.bin", "grow.bin"]) {
					if ((await sha256File(path.join(mp, p))) !== sha256(now[p])) return false;
				}
				return true;
			},
			{ timeoutMs: 30000, intervalMs: 250, what: "changed files to show their new content" },
		);
		for (const [p, data] of Object.entries(now)) {
			assert.equal((await stat(path.join(mp, p))).size, data.length, `${p} size after`);
			assert.equal(await sha256File(path.join(mp, p)), sha256(data), `${p} after`);
		}
		await expectErrno(stat(path.join(mp, "del.bin")), "ENOENT", "stat deleted file");
		await expectErrno(readFile(path.join(mp, "del.bin")), "ENOENT", "read deleted file");
		assert.ok(m.alive(), "the mount is still running");
	});

	it("a handle open across a remote change never mixes old and new bytes", async () => {
		const b = { type: "bucket", name: `${USER}/tornb` };
		const before = seededBytes(3 * MiB, 50);
		const afterChange = seededBytes(3 * MiB, 51); // same size: only the hash tells them apart
		await hub.createRepo({ ...common(), repo: b });
		await upload(b, { "f.bin": before });
		const m = await mount({
			kind: "bucket",
			id: b.name,
			globalArgs: ["--poll-interval-secs", "1", "--metadata-ttl-ms", "500"],
		});
		const file = path.join(m.mountpoint, "f.bin");
		const fh = await open(file, "r");
		try {
			const half = Buffer.alloc(1.5 * MiB);
			await fh.read(half, 0, half.length, 0);
			assert.ok(half.equals(Buffer.from(before.subarray(0, half.length))), "first half before the change");
			await upload(b, { "f.bin": afterChange });
			// A new open sees the new content once the poll has noticed it.
			await waitFor(async () => (await sha256File(file)) === sha256(afterChange), {
				timeoutMs: 30000,
				intervalMs: 250,
				what: "a new open to show the new content",
			});
			// The old handle: the whole file, read again through it, is one version or the other.
			const whole = Buffer.alloc(before.length);
			let got = 0;
			for (let i = 0; i < 100 && got < whole.length; i++) {
				const { bytesRead } = await fh.read(whole, got, whole.length - got, got);
				if (bytesRead === 0) break;
				got += bytesRead;
			}
			const digest = sha256(whole.subarray(0, got));
			assert.ok(
				digest === sha256(before) || digest === sha256(afterChange),
				`the open handle returned ${got} bytes matching neither version (first half old: ${whole
					.subarray(0, MiB)
					.equals(Buffer.from(before.subarray(0, MiB)))}, second half new: ${whole
					.subarray(2 * MiB, 3 * MiB)
					.equals(Buffer.from(afterChange.subarray(2 * MiB, 3 * MiB)))})`,
			);
		} finally {
			await fh.close();
		}
	});
});
