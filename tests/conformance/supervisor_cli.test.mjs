// `hf-mount start | stop | status` end to end, with HOME in a temp dir and the FUSE backend
// against hf-local-hub: a file uploaded by @huggingface/hub is read through the mount; a second
// start on the same mount point, bad ids, a missing mount point and a refused token fail with
// one line and leave nothing running; a kill -9'd backend disappears from `status` (and its
// pid file and control socket with it); the token never shows in logs, pid files or the backend's argv/environ;
// the default NFS backend without mount.nfs points at --fuse.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, readFileSync, readdirSync, mkdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import * as hub from "@huggingface/hub";
import { USER, TOKEN, startLocalHub, makeDataDir, removeDir } from "./lib/localhub.mjs";

const BIN_DIR = process.env.HFM_BIN_DIR;
const HF_MOUNT = BIN_DIR ? path.join(BIN_DIR, "hf-mount") : "hf-mount";
const haveFuse = existsSync("/dev/fuse") && process.getuid?.() === 0;
const haveMountNfs = ["/sbin", "/usr/sbin", "/bin", "/usr/bin"].some((d) =>
	existsSync(path.join(d, "mount.nfs")),
);

let server;
let dataDir;
let root; // HOME, mount points and caches of this test
const bucket = { type: "bucket", name: `${USER}/sup-bucket` };
const CONTENT = "hello through the supervisor\n";

const home = () => path.join(root, "home");
const pidsDir = () => path.join(home(), ".hf-mount", "pids");
const logsDir = () => path.join(home(), ".hf-mount", "logs");
const runDir = () => path.join(home(), ".hf-mount", "run");

function freshMountpoint(name) {
	const dir = path.join(root, name);
	mkdirSync(dir, { recursive: true });
	return dir;
}

// Runs a command to completion with a bounded time; resolves to { code, stdout, stderr }.
function run(file, args, { env = {}, timeoutMs = 90000 } = {}) {
	return new Promise((resolve) => {
		execFile(
			file,
			args,
			{ env: { PATH: process.env.PATH, HOME: home(), ...env }, timeout: timeoutMs, killSignal: "SIGKILL" },
			(err, stdout, stderr) => {
				const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
				resolve({ code, stdout: String(stdout), stderr: String(stderr) });
			},
		);
	});
}

const hfMount = (args, opts) => run(HF_MOUNT, args, opts);
const commonArgs = () => ["--hub-endpoint", server.url, "--cache-dir", path.join(root, "cache")];

function isMounted(dir) {
	const lines = readFileSync("/proc/self/mountinfo", "utf8").split("\n");
	return lines.some((l) => l.split(" ")[4] === dir);
}

// Processes whose command line mentions this test's temp root (only backends we started can).
function processesUsingRoot() {
	const found = [];
	for (const entry of readdirSync("/proc")) {
		if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
		try {
			const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8");
			if (cmdline.includes(root)) found.push(Number(entry));
		} catch {
			// gone meanwhile
		}
	}
	return found;
}

function pidFiles() {
	return existsSync(pidsDir()) ? readdirSync(pidsDir()).filter((f) => f.endsWith(".pid")) : [];
}

function readPidFile(name) {
	return readFileSync(path.join(pidsDir(), name), "utf8").split("\n");
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(predicate, what, timeoutMs = 15000) {
	const deadline = Date.now() + timeoutMs;
	while (Date.now() < deadline) {
		if (predicate()) return;
		await sleep(100);
	}
	assert.fail(`timed out waiting for ${what}`);
}

// Asserts a failed start left nothing behind: no backend, no pid file, no mount.
async function assertNothingRunning(mountpoint) {
	await waitFor(() => processesUsingRoot().length === 0, "no backend left running", 10000);
	assert.deepEqual(pidFiles(), [], "no pid file left");
	if (mountpoint) assert.equal(isMounted(mountpoint), false, `${mountpoint} not mounted`);
}

function assertOneLineReason(res, pattern) {
	const lines = res.stderr.trim().split("\n").filter((l) => l.trim() !== "");
	assert.ok(lines.length >= 1, `a reason on stderr: ${JSON.stringify(res)}`);
	assert.match(lines[0], pattern, JSON.stringify(res));
	assert.ok(lines[0].length < 400, "reason fits on one line");
}

function assertNoTokenAnywhere(pid) {
	for (const dir of [logsDir(), pidsDir()]) {
		if (!existsSync(dir)) continue;
		for (const f of readdirSync(dir)) {
			const text = readFileSync(path.join(dir, f), "utf8");
			assert.ok(!text.includes(TOKEN), `token found in ${path.join(dir, f)}`);
		}
	}
	if (pid) {
		const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
		const environ = readFileSync(`/proc/${pid}/environ`, "utf8");
		assert.ok(cmdline.includes("hf-mount-fuse"), `pid ${pid} is the backend: ${cmdline}`);
		assert.ok(!cmdline.includes(TOKEN), "token in the backend's argv");
		assert.ok(!environ.includes(TOKEN), "token in the backend's environment");
	}
}

// Last resort: nothing this test started survives it.
async function cleanup() {
	if (!root) return;
	for (const pid of processesUsingRoot()) {
		try {
			process.kill(pid, "SIGKILL");
		} catch {
			// already gone
		}
	}
	for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
		const mnt = line.split(" ")[4];
		if (mnt && mnt.startsWith(root)) await run("umount", ["-l", mnt], { timeoutMs: 10000 });
	}
}

before(async () => {
	root = await mkdtemp(path.join(tmpdir(), "hfm-sup-"));
	mkdirSync(home(), { recursive: true });
	dataDir = await makeDataDir("hfm-hubdata-sup-");
	server = await startLocalHub({ dataDir });
	const common = { hubUrl: server.url, accessToken: TOKEN };
	await hub.createRepo({ ...common, repo: bucket });
	await hub.uploadFiles({
		...common,
		repo: bucket,
		files: [
			{ path: "hello.txt", content: new Blob([CONTENT]) },
			{ path: "dir/nested.bin", content: new Blob([new Uint8Array(70000).fill(7)]) },
		],
	});
});

after(async () => {
	await cleanup();
	await server?.stop();
	await removeDir(dataDir);
	if (root) await rm(root, { recursive: true, force: true });
});

describe("hf-mount start/stop/status", { skip: !haveFuse && "needs /dev/fuse and root" }, () => {
	it("status with nothing running says so", async () => {
		const res = await hfMount(["status"]);
		assert.equal(res.code, 0, JSON.stringify(res));
		assert.match(res.stdout + res.stderr, /No running daemons/);
	});

	it("start --fuse mounts, status lists it, files read through it, stop unmounts", async () => {
		const mnt = freshMountpoint("mnt-main");
		const start = await hfMount(["start", "--fuse", "--hf-token", TOKEN, ...commonArgs(), "bucket", bucket.name, mnt]);
		try {
			assert.equal(start.code, 0, JSON.stringify(start));
			assert.match(start.stdout, /ready/);
			assert.ok(isMounted(mnt), `${mnt} is mounted`);

			const files = pidFiles();
			assert.equal(files.length, 1, `one pid file: ${files}`);
			const [pidLine, mountLine, sourceLine] = readPidFile(files[0]);
			const pid = Number(pidLine);
			assert.ok(pid > 0);
			assert.equal(mountLine, mnt);
			assert.equal(sourceLine, `bucket ${bucket.name}`);

			const status = await hfMount(["status"]);
			assert.equal(status.code, 0, JSON.stringify(status));
			const out = status.stdout + status.stderr;
			assert.match(out, new RegExp(`\\b${pid}\\b`));
			assert.ok(out.includes(`bucket ${bucket.name}`), out);
			assert.ok(out.includes(mnt), out);
			assert.match(out, /fuse/);

			assert.equal(readFileSync(path.join(mnt, "hello.txt"), "utf8"), CONTENT);
			const nested = readFileSync(path.join(mnt, "dir", "nested.bin"));
			assert.equal(nested.length, 70000);
			assert.ok(nested.every((b) => b === 7));

			assertNoTokenAnywhere(pid);

			// A second start on the same mount point is refused and changes nothing.
			const again = await hfMount(["start", "--fuse", ...commonArgs(), "bucket", bucket.name, mnt], {
				env: { HF_TOKEN: TOKEN },
			});
			assert.equal(again.code, 1, JSON.stringify(again));
			assertOneLineReason(again, /already/);
			const againSlash = await hfMount(["start", "--fuse", ...commonArgs(), "bucket", bucket.name, `${mnt}/`]);
			assert.equal(againSlash.code, 1, JSON.stringify(againSlash));
			assert.equal(pidFiles().length, 1, "still one pid file");
			assert.deepEqual(processesUsingRoot(), [pid], "still only the first backend");

			const stop = await hfMount(["stop", mnt]);
			assert.equal(stop.code, 0, JSON.stringify(stop));
			assert.equal(isMounted(mnt), false, "unmounted after stop");
			await waitFor(() => !existsSync(`/proc/${pid}/cmdline`) || processesUsingRoot().length === 0, "backend exit");
			assert.deepEqual(pidFiles(), []);
			const after = await hfMount(["status"]);
			assert.match(after.stdout + after.stderr, /No running daemons/);
		} finally {
			await cleanup();
		}
	});

	it("a kill -9'd backend disappears from status, which removes its pid file", async () => {
		const mnt = freshMountpoint("mnt-killed");
		const start = await hfMount(["start", "--fuse", ...commonArgs(), "bucket", bucket.name, mnt], {
			env: { HF_TOKEN: TOKEN },
		});
		try {
			assert.equal(start.code, 0, JSON.stringify(start));
			const files = pidFiles();
			assert.equal(files.length, 1);
			const pid = Number(readPidFile(files[0])[0]);
			assertNoTokenAnywhere(pid);
			const socket = path.join(runDir(), files[0].replace(/\.pid$/, ".sock"));
			assert.ok(existsSync(socket), "the backend serves its control socket");
			process.kill(pid, "SIGKILL");
			await waitFor(() => !processesUsingRoot().includes(pid), "the killed backend to go");
			assert.ok(existsSync(socket), "kill -9 leaves the socket behind");
			const status = await hfMount(["status"]);
			assert.equal(status.code, 0, JSON.stringify(status));
			assert.match(status.stdout + status.stderr, /No running daemons/);
			assert.ok(!(status.stdout + status.stderr).includes(mnt));
			assert.deepEqual(pidFiles(), [], "stale pid file removed");
			assert.equal(existsSync(socket), false, "stale control socket removed");
			// The dead backend's mount is still there; start refuses it and says how to fix it.
			assert.ok(isMounted(mnt), "stale mount left by kill -9");
			const again = await hfMount(["start", "--fuse", ...commonArgs(), "bucket", bucket.name, mnt]);
			assert.equal(again.code, 1, JSON.stringify(again));
			assertOneLineReason(again, /already mounted.*hf-mount stop/);
			const stop = await hfMount(["stop", mnt]);
			assert.equal(stop.code, 0, JSON.stringify(stop));
			assert.match(stop.stderr, /stale mount/);
			assert.equal(isMounted(mnt), false, "stop detached the stale mount");
		} finally {
			await run("umount", ["-l", mnt], { timeoutMs: 10000 });
			await cleanup();
		}
		assert.equal(isMounted(mnt), false);
	});

	it("a refused token fails with one line, no pid file and nothing running", async () => {
		const mnt = freshMountpoint("mnt-badtoken");
		const res = await hfMount(["start", "--fuse", ...commonArgs(), "bucket", bucket.name, mnt], {
			env: { HF_TOKEN: "hf_wrong_token_000" },
		});
		try {
			assert.notEqual(res.code, 0, JSON.stringify(res));
			assert.match(res.stdout, /failed/);
			assertOneLineReason(res, /hf-mount start: .*(401|unauthori[sz]ed|token|denied|refused)/i);
			await assertNothingRunning(mnt);
		} finally {
			await cleanup();
		}
	});

	it("a missing bucket fails with one line and leaves nothing behind", async () => {
		const mnt = freshMountpoint("mnt-nobucket");
		const res = await hfMount(["start", "--fuse", ...commonArgs(), "bucket", `${USER}/no-such-bucket`, mnt], {
			env: { HF_TOKEN: TOKEN },
		});
		try {
			assert.equal(res.code, 1, JSON.stringify(res));
			assertOneLineReason(res, /hf-mount start: /);
			await assertNothingRunning(mnt);
		} finally {
			await cleanup();
		}
	});

	it("bad usage, invalid ids and a missing mount point fail before spawning anything", async () => {
		const mnt = freshMountpoint("mnt-usage");
		const cases = [
			{ args: ["bucket", "not-a-bucket-id", mnt], code: 2, reason: /hf-mount start: .*(bucket|id|namespace)/i },
			{ args: ["bucket", "a/b/../c", mnt], code: 2, reason: /hf-mount start: / },
			{ args: ["repo", "", mnt], code: 2, reason: /hf-mount start: / },
			{ args: ["bucket", bucket.name], code: 2, reason: /hf-mount start: .*mountpoint/i },
			{ args: ["--no-such-option", "bucket", bucket.name, mnt], code: 2, reason: /hf-mount start: / },
			{
				args: ["bucket", bucket.name, path.join(root, "does", "not", "exist")],
				code: 1,
				reason: /hf-mount start: .*does not exist/,
			},
		];
		try {
			for (const c of cases) {
				const res = await hfMount(["start", "--fuse", ...commonArgs(), ...c.args], { env: { HF_TOKEN: TOKEN } });
				assert.equal(res.code, c.code, `${c.args.join(" ")}: ${JSON.stringify(res)}`);
				assertOneLineReason(res, c.reason);
				await assertNothingRunning(mnt);
			}
		} finally {
			await cleanup();
		}
	});

	it("stop on a mount point nothing serves fails clearly", async () => {
		const mnt = freshMountpoint("mnt-idle");
		const res = await hfMount(["stop", mnt]);
		assert.equal(res.code, 1, JSON.stringify(res));
		assertOneLineReason(res, /no running daemon/);
	});

	it(
		"the default NFS backend without mount.nfs fails with the hint to use --fuse",
		{ skip: haveMountNfs && "mount.nfs is installed here" },
		async () => {
			const mnt = freshMountpoint("mnt-nfs");
			const res = await hfMount(["start", ...commonArgs(), "bucket", bucket.name, mnt], { env: { HF_TOKEN: TOKEN } });
			try {
				assert.equal(res.code, 1, JSON.stringify(res));
				assertOneLineReason(res, /mount\.nfs.*--fuse/);
				await assertNothingRunning(mnt);
			} finally {
				await cleanup();
			}
		},
	);
});
