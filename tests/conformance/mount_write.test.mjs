// End-to-end write path (streaming mode, the default): ordinary tools write into a FUSE mount
// of a bucket on hf-local-hub — cp, dd, a shell redirection and Python open(…, "wb") with files
// of 0 B, 1 B, 10 MiB and 300 MiB, a deep `mkdir -p` tree, renames of a file and of a
// directory, unlink, overwrite, an editor-style save (temp file renamed over the target) — and
// after the unmount every file is downloaded by @huggingface/hub (a client no one here wrote)
// and compared by sha256 with the local source; removed and renamed-away paths must be gone.
// Also: dedup of a 200 MB checkpoint rewritten with 1 % of its bytes changed (measured in the
// bytes hf-local-hub stores), names over 255 bytes (ENAMETOOLONG), `..` in paths, and EROFS on
// a --read-only mount. And on a bucket of their own: symlinks (readlink, ls -l, cat through, rm),
// hard links as server-side copies checked by xetHash on the hub (an empty file too), chmod.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFile, link, lstat, mkdir, open, readFile, readdir, readlink, rename, rm, stat, symlink, unlink, writeFile } from "node:fs/promises";
import path from "node:path";
import * as hub from "@huggingface/hub";
import { USER, TOKEN, startLocalHub, makeDataDir, removeDir } from "./lib/localhub.mjs";
import { startMount, makeTempDir, removeTree, sha256, sha256File, seededBytes, waitFor, fuseUnavailable } from "./lib/mount.mjs";
import { writeSeededFile, hubFileDigest, hubFilePaths, casStoredBytes, run } from "./lib/write_helpers.mjs";

const skip = fuseUnavailable();
const noPython = spawnSync("python3", ["-c", "pass"], { stdio: "ignore" }).status === 0 ? false : "python3 not found";

const MiB = 1024 * 1024;
const bucket = { type: "bucket", name: `${USER}/writeb` };
let server;
let dataDir;
let work; // mount points, cache dirs and local source files
let srcDir;
let m; // the read-write mount
const extraMounts = [];
const common = () => ({ hubUrl: server.url, accessToken: TOKEN });

// What the bucket must hold once everything is written: path -> { size, sha256 }.
const expected = new Map();
// Paths that must not exist in the bucket (removed, renamed away, rejected).
const gone = new Set();

const mp = (p) => path.join(m.mountpoint, p);

async function expectErrno(promise, code, what) {
	await assert.rejects(promise, (e) => {
		assert.equal(e.code, code, `${what}: expected ${code}, got ${e.code} (${e.message})`);
		return true;
	});
}

function expectFile(p, data) {
	expected.set(p, { size: data.length, sha256: sha256(data) });
	gone.delete(p);
}

function expectGone(p) {
	expected.delete(p);
	gone.add(p);
}

// Checks a command succeeded, showing its stderr and the mount's log tail otherwise.
function assertRan(res, what) {
	assert.equal(res.status, 0, `${what}: exit ${res.status ?? res.signal}\n${res.stderr}\n--- mount log tail ---\n${m.log().slice(-3000)}`);
}

before(async () => {
	if (skip) return;
	dataDir = await makeDataDir("hfm-mount-write-");
	work = await makeTempDir("hfm-mount-write-mnt-");
	srcDir = path.join(work, "src");
	await mkdir(srcDir);
	server = await startLocalHub({ dataDir });
	await hub.createRepo({ ...common(), repo: bucket });
	m = await startMount({
		hubUrl: server.url,
		kind: "bucket",
		id: bucket.name,
		mountpoint: path.join(work, "mnt"),
		cacheDir: path.join(work, "cache"),
	});
});

after(async () => {
	for (const x of extraMounts) await x.stop();
	await m?.stop();
	await server?.stop();
	await removeDir(dataDir);
	await removeTree(work);
});

// --- the four writers ------------------------------------------------------------------------

// Each copies a local source file into the mount the way its tool does: cp (its own read/write
// loop), dd with 1 MiB blocks, `cat src > dst` in sh (the shell opens dst, cat inherits it),
// and Python open(dst, "wb") with 100,000-byte writes (not page-aligned).
const writers = {
	cp: (src, dst) => run("cp", [src, dst], { timeoutMs: 180000 }),
	dd: (src, dst) => run("dd", [`if=${src}`, `of=${dst}`, "bs=1M", "status=none"], { timeoutMs: 180000 }),
	redirect: (src, dst) => run("sh", ["-c", 'cat "$1" > "$2"', "sh", src, dst], { timeoutMs: 180000 }),
	python: (src, dst) =>
		run(
			"python3",
			[
				"-c",
				[
					"import sys",
					"with open(sys.argv[1], 'rb') as s, open(sys.argv[2], 'wb') as d:",
					"    while True:",
					"        b = s.read(100000)",
					"        if not b: break",
					"        d.write(b)",
				].join("\n"),
				src,
				dst,
			],
			{ timeoutMs: 180000 },
		),
};

const sizes = [
	["0B", 0],
	["1B", 1],
	["10MiB", 10 * MiB],
	["300MiB", 300 * MiB],
];

describe("streaming writes with ordinary tools", { skip }, () => {
	let seed = 100;
	for (const [tool, write] of Object.entries(writers)) {
		for (const [label, n] of sizes) {
			const s = seed++;
			it(`${tool} writes a ${label} file`, { skip: tool === "python" && noPython }, async () => {
				const rel = `tools/${tool}/${label}.bin`;
				await mkdir(mp(`tools/${tool}`), { recursive: true });
				const src = path.join(srcDir, `${tool}-${label}.bin`);
				const sum = await writeSeededFile(src, n, s);
				try {
					assertRan(await write(src, mp(rel)), `${tool} ${label}`);
				} finally {
					await rm(src, { force: true });
				}
				expected.set(rel, { size: n, sha256: sum });
				// Once close has returned, the file reads back through the mount at its full size.
				assert.equal((await stat(mp(rel))).size, n, `${rel} size through the mount`);
				if (n <= 10 * MiB) assert.equal(await sha256File(mp(rel)), sum, `${rel} read back through the mount`);
			});
		}
	}

	it("an empty file opens for reading as soon as close returns", async () => {
		for (const [i, make] of [
			() => run("cp", ["/dev/null", mp("tools/empty-0.bin")]),
			() => run("sh", ["-c", ': > "$1"', "sh", mp("tools/empty-1.bin")]),
			() => writeFile(mp("tools/empty-2.bin"), new Uint8Array(0)).then(() => ({ status: 0 })),
		].entries()) {
			const rel = `tools/empty-${i}.bin`;
			assertRan(await make(), `create ${rel}`);
			expected.set(rel, { size: 0, sha256: sha256(new Uint8Array(0)) });
			// No waiting: the reference makes open() wait for a commit in flight.
			assert.equal((await readFile(mp(rel))).length, 0, rel);
		}
	});

	it("a file whose first xorb fills to within a few KiB of 64 MiB with incompressible chunks uploads", async () => {
		// Seed 500 makes 1054 chunks totalling 67,104,847 bytes before xet-core's 64 MiB cut: serialized
		// with 8-byte chunk headers that is 67,113,279 bytes, 4,415 over 64 MiB. Checked first with
		// `hf-mount hash --chunks`, so the case keeps testing that edge.
		const n = 66 * MiB;
		const src = path.join(srcDir, "xorb-edge.bin");
		const sum = await writeSeededFile(src, n, 500);
		try {
			const hashed = await run(path.join(process.env.HFM_BIN_DIR, "hf-mount"), ["hash", "--chunks", "--json", src]);
			assert.equal(hashed.status, 0, hashed.stderr);
			let fill = 0;
			let count = 0;
			for (const c of JSON.parse(hashed.stdout).chunks) {
				if (fill + c.length > 64 * MiB || count + 1 > 8192) break;
				fill += c.length;
				count++;
			}
			assert.equal(fill + 8 * count, 67_113_279, "first xorb's serialized size (fill + 8-byte chunk headers)");
			await mkdir(mp("tools"), { recursive: true });
			assertRan(await writers.cp(src, mp("tools/xorb-edge.bin")), "cp of the 66 MiB file");
		} finally {
			await rm(src, { force: true });
		}
		expected.set("tools/xorb-edge.bin", { size: n, sha256: sum });
		assert.equal((await stat(mp("tools/xorb-edge.bin"))).size, n);
		// close() may return before the commit (staged writes); the file must still get there.
		const landed = await waitFor(
			async () => {
				const info = await hub.pathsInfo({ ...common(), repo: bucket, paths: ["tools/xorb-edge.bin"] });
				return info.length === 1 && info[0].size === n;
			},
			{ timeoutMs: 60000, intervalMs: 500, what: "tools/xorb-edge.bin to be committed on the hub" },
		);
		assert.ok(landed);
		assert.deepEqual(await hubFileDigest(common(), bucket, "tools/xorb-edge.bin"), { size: n, sha256: sum });
	});

	it("a file is overwritten (O_TRUNC) by cp, dd and a redirection in turn; the last one wins", async () => {
		const rel = "over/f.bin";
		await mkdir(mp("over"));
		let last;
		for (const [tool, n, s] of [
			["cp", 5 * MiB, 200],
			["dd", 2 * MiB + 17, 201],
			["redirect", 7 * MiB - 3, 202],
		]) {
			const src = path.join(srcDir, `over-${tool}.bin`);
			const sum = await writeSeededFile(src, n, s);
			assertRan(await writers[tool](src, mp(rel)), `${tool} over an existing file`);
			await rm(src);
			assert.equal((await stat(mp(rel))).size, n, `size after ${tool}`);
			assert.equal(await sha256File(mp(rel)), sum, `content after ${tool}`);
			last = { size: n, sha256: sum };
		}
		expected.set(rel, last);
	});
});

describe("namespace operations", { skip }, () => {
	it("mkdir -p makes a deep tree; files land at every level; an empty directory stays local", async () => {
		const deep = "deep/a/b/c/d/e/f/g/h/i/j/k/l";
		assertRan(await run("mkdir", ["-p", mp(deep), mp("deep/a/empty/sub")]), "mkdir -p");
		assert.ok((await stat(mp(deep))).isDirectory());
		const files = {
			"deep/top.txt": new TextEncoder().encode("top of the tree\n"),
			"deep/a/b/c/mid.bin": seededBytes(100_000, 300),
			[`${deep}/leaf.bin`]: seededBytes(4097, 301),
			"deep/a/b/c/d/e/f/g/h/i/j/other.bin": seededBytes(1, 302),
		};
		for (const [rel, data] of Object.entries(files)) {
			await writeFile(mp(rel), data);
			expectFile(rel, data);
		}
		for (const [rel, data] of Object.entries(files)) assert.equal(await sha256File(mp(rel)), sha256(data), rel);
		assert.deepEqual((await readdir(mp("deep/a"))).sort(), ["b", "empty"]);
		assert.deepEqual(await readdir(mp("deep/a/empty/sub")), []);
	});

	it("renames a file within a directory and across directories", async () => {
		await mkdir(mp("ren"));
		await mkdir(mp("moved"));
		const a = seededBytes(3 * MiB + 5, 310);
		const c = new TextEncoder().encode("c moves to another directory\n");
		await writeFile(mp("ren/a.bin"), a);
		await writeFile(mp("ren/c.txt"), c);
		await rename(mp("ren/a.bin"), mp("ren/b.bin"));
		await rename(mp("ren/c.txt"), mp("moved/c.txt"));
		await expectErrno(stat(mp("ren/a.bin")), "ENOENT", "old name");
		await expectErrno(stat(mp("ren/c.txt")), "ENOENT", "old name across directories");
		assert.deepEqual(await readdir(mp("ren")), ["b.bin"]);
		assert.equal(await sha256File(mp("ren/b.bin")), sha256(a));
		assert.equal(await sha256File(mp("moved/c.txt")), sha256(c));
		expectFile("ren/b.bin", a);
		expectFile("moved/c.txt", c);
		expectGone("ren/a.bin");
		expectGone("ren/c.txt");
	});

	// Renames `from` (holding `files`, keyed by paths under `from`/) to `to` and checks the move;
	// with `busyMs`, an EBUSY rename is retried for that long.
	async function renameDirAndCheck(from, to, files, busyMs = 0) {
		const deadline = Date.now() + busyMs;
		for (;;) {
			try {
				await rename(mp(from), mp(to));
				break;
			} catch (e) {
				if (e.code !== "EBUSY" || Date.now() > deadline) throw e;
			}
			await new Promise((r) => setTimeout(r, 100));
		}
		await expectErrno(stat(mp(from)), "ENOENT", "old directory name");
		for (const [rel, data] of Object.entries(files)) {
			const now = to + rel.slice(from.length);
			assert.equal(await sha256File(mp(now)), sha256(data), now);
			expectFile(now, data);
			expectGone(rel);
		}
	}

	function dirFiles(dir, seed) {
		return {
			[`${dir}/1.bin`]: seededBytes(200_000, seed),
			[`${dir}/x/2.bin`]: seededBytes(1 * MiB, seed + 1),
			[`${dir}/x/y/3.txt`]: new TextEncoder().encode("three\n"),
			[`${dir}/x/y/z/4.bin`]: seededBytes(0, seed + 2),
		};
	}

	it("renames a whole directory (with subdirectories) once its files are on the hub", async () => {
		const files = dirFiles("rdir", 320);
		await mkdir(mp("rdir/x/y/z"), { recursive: true });
		for (const [rel, data] of Object.entries(files)) {
			await writeFile(mp(rel), data);
			expectFile(rel, data);
		}
		// close() may return before the commit; this case is about renaming committed files.
		await waitFor(
			async () => {
				const info = await hub.pathsInfo({ ...common(), repo: bucket, paths: Object.keys(files) });
				return info.length === Object.keys(files).length;
			},
			{ timeoutMs: 60000, intervalMs: 200, what: "rdir's files to be committed" },
		);
		// The mount marks a file clean once the hub has answered the batch that committed it.
		await renameDirAndCheck("rdir", "rdir-renamed", files, 5000);
	});

	it("renames a directory right after files inside it were closed", async () => {
		const files = dirFiles("fresh", 325);
		await mkdir(mp("fresh/x/y/z"), { recursive: true });
		for (const [rel, data] of Object.entries(files)) {
			await writeFile(mp(rel), data);
			expectFile(rel, data);
		}
		await renameDirAndCheck("fresh", "fresh-renamed", files);
	});

	it("unlink removes a committed file (and only that one)", async () => {
		await mkdir(mp("unl"));
		const keep = seededBytes(50_000, 330);
		await writeFile(mp("unl/drop.bin"), seededBytes(60_000, 331));
		await writeFile(mp("unl/keep.bin"), keep);
		await unlink(mp("unl/drop.bin"));
		await expectErrno(stat(mp("unl/drop.bin")), "ENOENT", "unlinked file");
		await expectErrno(unlink(mp("unl/drop.bin")), "ENOENT", "second unlink");
		assert.deepEqual(await readdir(mp("unl")), ["keep.bin"]);
		expectFile("unl/keep.bin", keep);
		expectGone("unl/drop.bin");
		// Also a file written by an earlier test, from another directory.
		await unlink(mp("deep/top.txt"));
		expectGone("deep/top.txt");
	});

	it("an editor-style save (write a temp file, fsync, rename it over the target) replaces the file, twice", async () => {
		await mkdir(mp("edit"));
		const v1 = new TextEncoder().encode("version 1\n");
		await writeFile(mp("edit/doc.txt"), v1);
		let last = v1;
		for (const [i, data] of [
			[2, new TextEncoder().encode("version 2, a little longer\n")],
			[3, seededBytes(2 * MiB, 340)],
		]) {
			const tmp = mp(`edit/.doc.txt.${i}.tmp`);
			const fh = await open(tmp, "w");
			try {
				await fh.write(data);
				await fh.sync();
			} finally {
				await fh.close();
			}
			await rename(tmp, mp("edit/doc.txt"));
			assert.deepEqual(await readdir(mp("edit")), ["doc.txt"], `after save ${i}`);
			assert.equal(await sha256File(mp("edit/doc.txt")), sha256(data), `content after save ${i}`);
			expectGone(`edit/.doc.txt.${i}.tmp`);
			last = data;
		}
		expectFile("edit/doc.txt", last);
	});
});

// Issue #5's in-memory namespace features, on a bucket of their own (so the end-of-file listing
// of `writeb` is unaffected) and a mount of their own, which is remounted at the end. What the
// reference does: symlinks and chmod live in memory only (lost on unmount); a hard link is a
// server-side copy, one batch addFile bound to the source's xet hash (no bytes uploaded), with
// its own inode; an empty file has the all-zero xet hash (no chunks), which links like any other.
describe("symlinks, hard links and chmod through the mount", { skip }, () => {
	const lbucket = { type: "bucket", name: `${USER}/linksb` };
	let lm; // this block's mount
	const at = (p) => path.join(lm.mountpoint, p);
	const startLinksMount = () =>
		startMount({
			hubUrl: server.url,
			kind: "bucket",
			id: lbucket.name,
			mountpoint: path.join(work, "links-mnt"),
			cacheDir: path.join(work, "links-cache"),
		});
	const ran = (res, what) =>
		assert.equal(res.status, 0, `${what}: exit ${res.status ?? res.signal}\n${res.stderr}\n--- mount log tail ---\n${lm.log().slice(-3000)}`);
	const hubInfo = async (p) => (await hub.pathsInfo({ ...common(), repo: lbucket, paths: [p] }))[0];
	// Waits until the hub lists `p` with `size` bytes (close may return before the commit).
	const committed = (p, size) =>
		waitFor(
			async () => {
				const info = await hubInfo(p);
				return info?.size === size ? info : null;
			},
			{ timeoutMs: 60000, intervalMs: 200, what: `${p} to be committed on the hub` },
		);
	// `ln src dst`: the mount commits an uncommitted source first, so it never needs a retry.
	const hardLink = (src, dst) => run("ln", [at(src), at(dst)]);

	before(async () => {
		await hub.createRepo({ ...common(), repo: lbucket });
		lm = await startLinksMount();
	});

	after(async () => {
		await lm?.stop();
	});

	it("ln -s: readlink answers the target, ls -l shows an l entry `-> target`, cat reads through, rm leaves the target", async () => {
		await mkdir(at("sl"));
		const data = seededBytes(70_000, 600);
		await writeFile(at("sl/target.bin"), data);
		ran(await run("ln", ["-s", "target.bin", at("sl/link")]), "ln -s");
		ran(await run("ln", ["-s", "/nonexistent/elsewhere", at("sl/dangling")]), "ln -s to a missing path");

		const rl = await run("readlink", [at("sl/link")]);
		ran(rl, "readlink");
		assert.equal(rl.stdout, "target.bin\n");
		assert.equal(await readlink(at("sl/dangling")), "/nonexistent/elsewhere");
		const st = await lstat(at("sl/link"));
		assert.ok(st.isSymbolicLink(), "lstat reports a symlink");
		assert.equal(st.size, "target.bin".length, "a symlink's size is its target's length");
		const ls = await run("ls", ["-l", at("sl")]);
		ran(ls, "ls -l");
		assert.match(ls.stdout, /^l[rwx-]{9}\S*\s.*\slink -> target\.bin$/m, ls.stdout);
		assert.match(ls.stdout, /^l[rwx-]{9}\S*\s.*\sdangling -> \/nonexistent\/elsewhere$/m, ls.stdout);
		assert.deepEqual(
			(await readdir(at("sl"), { withFileTypes: true })).map((e) => [e.name, e.isSymbolicLink()]).sort(),
			[
				["dangling", true],
				["link", true],
				["target.bin", false],
			],
			"readdir types (DT_LNK)",
		);

		const cat = await run("sh", ["-c", 'cat "$1" | sha256sum', "sh", at("sl/link")]);
		ran(cat, "cat through the symlink");
		assert.equal(cat.stdout.split(" ")[0], sha256(data), "cat link gives the target's bytes");
		assert.equal(sha256(await readFile(at("sl/link"))), sha256(data), "node reads through the symlink");
		await expectErrno(readFile(at("sl/dangling")), "ENOENT", "reading through a dangling symlink");
		await expectErrno(readlink(at("sl/target.bin")), "EINVAL", "readlink of a regular file");
		await expectErrno(symlink("other", at("sl/link")), "EEXIST", "ln -s over an existing symlink");

		ran(await run("rm", [at("sl/link")]), "rm link");
		await expectErrno(lstat(at("sl/link")), "ENOENT", "the removed symlink");
		assert.equal(await sha256File(at("sl/target.bin")), sha256(data), "the target is intact");
		assert.deepEqual((await readdir(at("sl"))).sort(), ["dangling", "target.bin"]);
		// Symlinks never reach the bucket; the target does.
		await committed("sl/target.bin", data.length);
		assert.deepEqual(await hubFilePaths(common(), lbucket), ["sl/target.bin"]);
	});

	it("ln of a committed file: the hub lists the new name with the same xetHash and serves identical bytes", async () => {
		await mkdir(at("hl"));
		const data = seededBytes(3 * MiB + 7, 610);
		await writeFile(at("hl/a.bin"), data);
		const a = await committed("hl/a.bin", data.length);
		assert.match(a.xetHash ?? "", /^[0-9a-f]{64}$/, "a.bin's xetHash");
		const stored = await casStoredBytes(dataDir);

		ran(await hardLink("hl/a.bin", "hl/b.bin"), "ln a.bin b.bin");
		// link commits synchronously (one batch addFile): the hub has b.bin when ln returns.
		const b = await hubInfo("hl/b.bin");
		assert.ok(b, "the hub lists hl/b.bin right after ln");
		assert.equal(b.xetHash, a.xetHash, "same xetHash: a server-side copy");
		assert.equal(b.size, data.length);
		assert.deepEqual(await hubFileDigest(common(), lbucket, "hl/b.bin"), { size: data.length, sha256: sha256(data) });
		assert.equal(await casStoredBytes(dataDir), stored, "no bytes were uploaded for the link");

		const [sa, sb] = [await stat(at("hl/a.bin")), await stat(at("hl/b.bin"))];
		assert.notEqual(sb.ino, sa.ino, "the new name is a separate inode");
		assert.equal(sb.nlink, 1);
		assert.equal(sb.size, data.length);
		assert.equal(await sha256File(at("hl/b.bin")), sha256(data), "b.bin reads the bytes through the mount");
		await expectErrno(link(at("hl/a.bin"), at("hl/b.bin")), "EEXIST", "ln onto an existing name");
		await expectErrno(link(at("hl"), at("hl-dir-link")), "EPERM", "ln of a directory");

		// A copy, not a shared inode: replacing b.bin leaves a.bin (locally and on the hub).
		const other = new TextEncoder().encode("b.bin rewritten\n");
		await writeFile(at("hl/b.bin"), other);
		assert.equal(await sha256File(at("hl/a.bin")), sha256(data), "a.bin after b.bin was rewritten");
		await committed("hl/b.bin", other.length);
		assert.equal((await hubInfo("hl/a.bin")).xetHash, a.xetHash, "a.bin on the hub after b.bin was rewritten");
		// rm of the link leaves the source.
		ran(await run("rm", [at("hl/b.bin")]), "rm b.bin");
		assert.equal(await sha256File(at("hl/a.bin")), sha256(data));
		await waitFor(async () => !(await hub.fileExists({ ...common(), repo: lbucket, path: "hl/b.bin" })), {
			timeoutMs: 30000,
			what: "hl/b.bin to be deleted on the hub",
		});
		assert.deepEqual(await hubFileDigest(common(), lbucket, "hl/a.bin"), { size: data.length, sha256: sha256(data) });
	});

	it("ln of an empty file: the all-zero xetHash is copied like any other, and the copy downloads as 0 bytes", async () => {
		ran(await run("sh", ["-c", ': > "$1"', "sh", at("hl/empty")]), "create an empty file");
		// An empty file commits at release, which the kernel may send after close has returned
		// and after the `ln` below: the link commits the source first, so it works at once.
		ran(await hardLink("hl/empty", "hl/empty-early"), "ln right after creating the file");
		const e = await committed("hl/empty", 0);
		// xet: a file with no chunks has the all-zero file hash (not a keyed hash of nothing).
		assert.equal(e.xetHash, "0".repeat(64), "the empty file's xetHash on the hub");
		ran(await hardLink("hl/empty", "hl/empty-link"), "ln empty empty-link");
		const l = await hubInfo("hl/empty-link");
		assert.ok(l, "the hub lists hl/empty-link right after ln");
		assert.equal(l.xetHash, e.xetHash);
		assert.equal(l.size, 0);
		assert.deepEqual(await hubFileDigest(common(), lbucket, "hl/empty-link"), { size: 0, sha256: sha256(new Uint8Array(0)) });
		assert.equal((await stat(at("hl/empty-link"))).size, 0);
		assert.equal((await readFile(at("hl/empty-link"))).length, 0);
		assert.equal((await hubInfo("hl/empty-early"))?.xetHash, e.xetHash, "the early link");
		ran(await run("rm", [at("hl/empty-early")]), "rm empty-early");
	});

	it("chmod 600: stat shows mode 0600 while mounted (ls -l too); another file keeps 0644", async () => {
		await mkdir(at("perm"));
		await writeFile(at("perm/f.txt"), "mode bits live in memory\n");
		await writeFile(at("perm/g.txt"), "untouched\n");
		ran(await run("chmod", ["600", at("perm/f.txt")]), "chmod 600");
		assert.equal((await stat(at("perm/f.txt"))).mode & 0o7777, 0o600);
		const st = await run("stat", ["-c", "%a %A", at("perm/f.txt")]);
		ran(st, "stat");
		assert.equal(st.stdout, "600 -rw-------\n");
		assert.equal((await stat(at("perm/g.txt"))).mode & 0o7777, 0o644);
		ran(await run("chmod", ["700", at("perm")]), "chmod 700 on a directory");
		assert.equal((await stat(at("perm"))).mode & 0o7777, 0o700);
		// Still 0600 once the content is committed (the commit carries no mode).
		await committed("perm/f.txt", "mode bits live in memory\n".length);
		assert.equal((await stat(at("perm/f.txt"))).mode & 0o7777, 0o600, "mode after the commit");
	});

	it("after a remount: symlinks and modes are gone (memory only), the hard-link copies are still there", async () => {
		const exit = await lm.stop();
		assert.deepEqual(exit, { code: 0, signal: null, stillMounted: false }, lm.log().slice(-3000));
		lm = await startLinksMount();
		await expectErrno(lstat(at("sl/dangling")), "ENOENT", "a symlink after the remount");
		assert.deepEqual(await readdir(at("sl")), ["target.bin"]);
		assert.equal((await stat(at("perm/f.txt"))).mode & 0o7777, 0o644, "chmod'd file after the remount");
		assert.equal((await stat(at("hl/empty-link"))).size, 0);
		assert.deepEqual(await hubFilePaths(common(), lbucket), ["hl/a.bin", "hl/empty", "hl/empty-link", "perm/f.txt", "perm/g.txt", "sl/target.bin"]);
	});
});

describe("bad input", { skip }, () => {
	it("a name component over 255 bytes is ENAMETOOLONG for create, mkdir and rename; 255 bytes works", async () => {
		await mkdir(mp("names"));
		const long = "n".repeat(256);
		const longUtf8 = "é".repeat(128); // 256 bytes in 128 characters
		for (const name of [long, longUtf8, "x".repeat(1000)]) {
			await expectErrno(writeFile(mp(`names/${name}`), "x"), "ENAMETOOLONG", `create ${name.length} chars`);
			await expectErrno(mkdir(mp(`names/${name}`)), "ENAMETOOLONG", `mkdir ${name.length} chars`);
		}
		await expectErrno(writeFile(mp(`${long}/inside.txt`), "x"), "ENAMETOOLONG", "a long directory component");
		const ok255 = "m".repeat(255);
		const data = new TextEncoder().encode("a 255-byte name is allowed\n");
		await writeFile(mp(`names/${ok255}`), data);
		await expectErrno(rename(mp(`names/${ok255}`), mp(`names/${long}`)), "ENAMETOOLONG", "rename to 256 bytes");
		assert.equal(await sha256File(mp(`names/${ok255}`)), sha256(data));
		assert.deepEqual(await readdir(mp("names")), [ok255]);
		expectFile(`names/${ok255}`, data);
	});

	it("`..` components resolve like anywhere else and never reach the bucket", async () => {
		await mkdir(mp("dots/sub"), { recursive: true });
		const mnt = m.mountpoint;
		const inside = new TextEncoder().encode("written via dots/sub/..\n");
		const back = new TextEncoder().encode("written via ../mnt\n");
		const outside = new TextEncoder().encode("outside the mount\n");
		// Built as strings: path.join would normalize the `..` away before the kernel sees it.
		await writeFile(`${mnt}/dots/sub/../inside.txt`, inside);
		await writeFile(`${mnt}/../${path.basename(mnt)}/dots/back.txt`, back);
		await writeFile(`${mnt}/dots/sub/../../../outside-${path.basename(mnt)}.txt`, outside);
		assert.equal(await sha256File(mp("dots/inside.txt")), sha256(inside));
		assert.equal(await sha256File(mp("dots/back.txt")), sha256(back));
		assert.deepEqual((await readdir(mp("dots"))).sort(), ["back.txt", "inside.txt", "sub"]);
		assert.deepEqual(await readdir(mp("dots/sub")), []);
		// The last one landed next to the mount point, on the local disk, not in the bucket.
		assert.equal(await sha256File(path.join(work, `outside-${path.basename(mnt)}.txt`)), sha256(outside));
		await expectErrno(stat(mp(`outside-${path.basename(mnt)}.txt`)), "ENOENT", "the escaped name inside the mount");
		expectFile("dots/inside.txt", inside);
		expectFile("dots/back.txt", back);
		expectGone(`outside-${path.basename(mnt)}.txt`);
		expectGone("dots/sub/inside.txt");
	});

	it("every write on a --read-only mount of the bucket is EROFS and changes nothing", async () => {
		const ro = await startMount({
			hubUrl: server.url,
			kind: "bucket",
			id: bucket.name,
			mountpoint: path.join(work, "ro"),
			cacheDir: path.join(work, "ro-cache"),
			globalArgs: ["--read-only"],
		});
		extraMounts.push(ro);
		const at = (p) => path.join(ro.mountpoint, p);
		const before = expected.get("ren/b.bin");
		assert.ok(before, "ren/b.bin was written by an earlier test");
		assert.equal(await sha256File(at("ren/b.bin")), before.sha256, "the read-only mount reads the bucket");
		await expectErrno(writeFile(at("new.txt"), "x"), "EROFS", "create");
		await expectErrno(writeFile(at("ren/b.bin"), "x"), "EROFS", "truncate-write an existing file");
		await expectErrno(open(at("ren/b.bin"), "r+"), "EROFS", "open r+");
		await expectErrno(open(at("ren/b.bin"), "a"), "EROFS", "open for append");
		await expectErrno(mkdir(at("newdir")), "EROFS", "mkdir");
		await expectErrno(unlink(at("ren/b.bin")), "EROFS", "unlink");
		await expectErrno(rename(at("ren/b.bin"), at("ren/b2.bin")), "EROFS", "rename");
		await expectErrno(rename(at("ren"), at("ren2")), "EROFS", "rename a directory");
		const cp = await run("cp", [path.join(work, `outside-${path.basename(m.mountpoint)}.txt`), at("cp.txt")]);
		assert.notEqual(cp.status, 0, "cp into a read-only mount fails");
		assert.match(cp.stderr, /Read-only file system/);
		assert.equal(await sha256File(at("ren/b.bin")), before.sha256, "unchanged");
		assert.deepEqual(await readdir(at("ren")), ["b.bin"]);
		gone.add("new.txt");
		gone.add("newdir/x");
		gone.add("cp.txt");
		gone.add("ren/b2.bin");
		const exit = await ro.stop();
		assert.deepEqual(exit, { code: 0, signal: null, stillMounted: false }, ro.log().slice(-2000));
	});
});

describe("dedup of a rewritten checkpoint", { skip }, () => {
	// 200 MB, then the same file with 1 % of its bytes changed in 20 edits of 100,000 bytes at
	// scattered offsets (one per 10 MB stretch, at a pseudo-random place inside it). Content-
	// defined chunking confines each edit to the chunks it touches (~64 KiB average), so the
	// second upload should add about 2 MB of edited bytes plus a chunk or two around each edit.
	const SIZE = 200_000_000;
	const EDITS = 20;
	const EDIT_LEN = 100_000;

	it("the second checkpoint grows the hub's stored bytes by < 5 % of its size", async () => {
		const a = path.join(srcDir, "ckpt-a.bin");
		const b = path.join(srcDir, "ckpt-b.bin");
		const sumA = await writeSeededFile(a, SIZE, 400);
		await copyFile(a, b);
		const patch = seededBytes(EDITS * EDIT_LEN, 401);
		let rng = 0x2545f491;
		const fh = await open(b, "r+");
		try {
			const stretch = SIZE / EDITS;
			for (let i = 0; i < EDITS; i++) {
				rng = (Math.imul(rng, 1103515245) + 12345) >>> 0;
				const off = i * stretch + (rng % (stretch - EDIT_LEN));
				await fh.write(patch, i * EDIT_LEN, EDIT_LEN, off);
			}
		} finally {
			await fh.close();
		}
		const sumB = await sha256File(b);
		assert.notEqual(sumA, sumB);

		await mkdir(mp("ckpt"));
		const s0 = await casStoredBytes(dataDir);
		assertRan(await writers.cp(a, mp("ckpt/step-1000.bin")), "cp checkpoint 1");
		const s1 = await casStoredBytes(dataDir);
		assertRan(await writers.cp(b, mp("ckpt/step-2000.bin")), "cp checkpoint 2");
		const s2 = await casStoredBytes(dataDir);
		await rm(a);
		await rm(b);
		expected.set("ckpt/step-1000.bin", { size: SIZE, sha256: sumA });
		expected.set("ckpt/step-2000.bin", { size: SIZE, sha256: sumB });
		// The first checkpoint shares nothing with earlier files: all of it is stored.
		assert.ok(s1 - s0 >= SIZE, `first checkpoint stored ${s1 - s0} bytes, expected >= ${SIZE}`);
		const growth = s2 - s1;
		assert.ok(
			growth < 0.05 * SIZE,
			`second checkpoint grew the store by ${growth} bytes (${((100 * growth) / SIZE).toFixed(2)} % of ${SIZE}); limit 5 %`,
		);
		assert.ok(growth >= EDITS * EDIT_LEN, `the edited ${EDITS * EDIT_LEN} bytes must be stored (grew ${growth})`);
	});
});

describe("after unmount, @huggingface/hub reads back every file", { skip }, () => {
	it("the mount stops cleanly", async () => {
		const exit = await m.stop();
		assert.deepEqual(exit, { code: 0, signal: null, stillMounted: false }, m.log().slice(-3000));
	});

	it("the bucket lists exactly the expected files", async () => {
		const listed = await hubFilePaths(common(), bucket);
		assert.deepEqual(listed, [...expected.keys()].sort());
	});

	it("every file downloads byte-identical (sha256) with the local source", async () => {
		const mismatches = [];
		for (const [p, want] of [...expected.entries()].sort()) {
			const got = await hubFileDigest(common(), bucket, p);
			if (got === null) mismatches.push(`${p}: missing`);
			else if (got.size !== want.size || got.sha256 !== want.sha256) {
				mismatches.push(`${p}: got ${got.size} B ${got.sha256}, want ${want.size} B ${want.sha256}`);
			}
		}
		assert.deepEqual(mismatches, []);
	});

	it("removed and renamed-away paths are gone", async () => {
		const present = [];
		for (const p of [...gone].sort()) {
			if (await hub.fileExists({ ...common(), repo: bucket, path: p })) present.push(p);
		}
		assert.deepEqual(present, []);
		const listed = await hubFilePaths(common(), bucket);
		assert.deepEqual(
			listed.filter((p) => p.split("/").some((c) => c === ".." || c === ".")),
			[],
			"no path in the bucket has a . or .. component",
		);
	});
});
