// `hf-mount start | status | stop` with writes, end to end (HOME in a temp dir, the FUSE
// backend against hf-local-hub): status shows live columns from the backend's control socket
// (state, cache use, dirty files, pending commits); a file written through the mount is read
// back and, after stop, is on the Hub for @huggingface/hub; writes still pending when stop
// arrives are committed before the backend exits; a backend that does not answer shows "-"
// without slowing status down; the token never appears in logs, pid files, control answers or
// the backend's argv/environment.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync, writeFileSync, statSync } from "node:fs";
import path from "node:path";
import * as hub from "@huggingface/hub";
import { USER, TOKEN, startLocalHub, makeDataDir, removeDir, randomBytes, sameBytes } from "./lib/localhub.mjs";
import { Supervisor, parseStatusTable } from "./lib/supervisor.mjs";
import { fuseUnavailable, startHubOnPort } from "./lib/mount.mjs";

const skip = fuseUnavailable();
const CACHE_SIZE = 50_000_000;

let server;
let dataDir;
let sup;
const bucket = { type: "bucket", name: `${USER}/sup-writes` };
const SEED = randomBytes(70_000, 11);
// Commits debounced for 10 minutes: only the shutdown flush (or the next start) sends a file.
const HOLD_COMMITS = ["--advanced-writes", "--flush-debounce-ms", "600000", "--flush-max-batch-window-ms", "600000"];
const common = () => ({ hubUrl: server.url, accessToken: TOKEN });

const startArgs = (mnt, extra = [], hubUrl = server.url) => [
	"start",
	"--fuse",
	"--hf-token",
	TOKEN,
	"--hub-endpoint",
	hubUrl,
	"--cache-dir",
	path.join(sup.root, `cache-${path.basename(mnt)}`),
	"--cache-size",
	String(CACHE_SIZE),
	"--poll-interval-secs",
	"0",
	...extra,
	"bucket",
	bucket.name,
	mnt,
];

async function hubBytes(file, hubUrl = server.url) {
	const blob = await hub.downloadFile({ hubUrl, accessToken: TOKEN, repo: bucket, path: file });
	return blob ? new Uint8Array(await blob.arrayBuffer()) : null;
}

// True when every thread of `pid` is in state T (stopped).
function allThreadsStopped(pid) {
	return readdirSync(`/proc/${pid}/task`).every((t) => readFileSync(`/proc/${pid}/task/${t}/stat`, "utf8").split(") ")[1].startsWith("T"));
}

function rowFor(stdout, pid) {
	return parseStatusTable(stdout).find((r) => Number(r.PID) === pid);
}

function assertNoToken(mnt, pid, answers) {
	for (const file of [sup.logFile(mnt), sup.pidFile(mnt)]) {
		if (existsSync(file)) assert.ok(!readFileSync(file, "utf8").includes(TOKEN), `token in ${file}`);
	}
	for (const a of answers) assert.ok(!a.includes(TOKEN), "token in a control answer");
	const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
	assert.ok(cmdline.includes("hf-mount-fuse"), `pid ${pid} is the backend: ${cmdline}`);
	assert.ok(!cmdline.includes(TOKEN), "token in the backend's argv");
	assert.ok(!readFileSync(`/proc/${pid}/environ`, "utf8").includes(TOKEN), "token in the backend's environment");
}

before(async () => {
	if (skip) return;
	sup = await Supervisor.create("hfm-supw-");
	dataDir = await makeDataDir("hfm-hubdata-supw-");
	server = await startLocalHub({ dataDir });
	await hub.createRepo({ ...common(), repo: bucket });
	await hub.uploadFiles({ ...common(), repo: bucket, files: [{ path: "seed.bin", content: new Blob([SEED]) }] });
});

after(async () => {
	await sup?.remove();
	await server?.stop();
	await removeDir(dataDir);
});

describe("hf-mount status and stop with writes", { skip }, () => {
	it("start → status → write and read back → stop → status empty; the file is on the Hub", async () => {
		const mnt = sup.freshMountpoint("mnt-rw");
		try {
			const start = await sup.hfMount(startArgs(mnt));
			assert.equal(start.code, 0, JSON.stringify(start));
			const pid = sup.pidOf(mnt);
			const socket = sup.socketFile(mnt);
			assert.ok(existsSync(socket), "control socket exists");
			assert.equal(Supervisor.mode(socket), 0o600, "socket is 0600");
			assert.equal(Supervisor.mode(sup.runDir()), 0o700, "run dir is 0700");
			assert.ok(statSync(socket).isSocket());

			// Reading through the mount fills the chunk cache, which status reports.
			assert.equal(sameBytes(new Uint8Array(readFileSync(path.join(mnt, "seed.bin"))), SEED), "equal");
			const content = `written through hf-mount at ${Date.now()}\n`;
			writeFileSync(path.join(mnt, "new.txt"), content);
			assert.equal(readFileSync(path.join(mnt, "new.txt"), "utf8"), content);

			const answer = await sup.queryControl(socket);
			const report = JSON.parse(answer);
			assert.equal(report.state, "serving");
			assert.equal(report.pid, pid);
			assert.equal(report.backend, "fuse");
			assert.equal(report.mountpoint, mnt);
			assert.equal(report.cache_limit_bytes, CACHE_SIZE);
			assert.ok(report.cache_used_bytes > 0, `cache used after a read: ${answer}`);
			assert.equal(report.dirty_files, 0, answer);
			assert.equal(report.pending_commits, 0, answer);
			assert.ok(report.committed_files >= 1, answer);
			const refused = await sup.queryControl(socket, '{"op":"shutdown"}\n');
			assert.match(refused, /"error"/);

			const status = await sup.hfMount(["status"]);
			assert.equal(status.code, 0, JSON.stringify(status));
			assert.match(status.stdout, /^PID\s+BACKEND\s+UPTIME\s+STATE\s+CACHE\s+DIRTY\s+PENDING\s+SOURCE\s+MOUNTPOINT/);
			const row = rowFor(status.stdout, pid);
			assert.ok(row, status.stdout);
			assert.equal(row.BACKEND, "fuse");
			assert.equal(row.STATE, "serving");
			assert.match(row.CACHE, /^\d+(\.\d)?(B|KiB|MiB)\/47\.7MiB$/);
			assert.equal(row.DIRTY, "0");
			assert.equal(row.PENDING, "0(0B)");
			assert.equal(row.SOURCE, `bucket ${bucket.name}`);
			assert.equal(row.MOUNTPOINT, mnt);

			assertNoToken(mnt, pid, [answer, refused]);

			const stop = await sup.hfMount(["stop", mnt]);
			assert.equal(stop.code, 0, JSON.stringify(stop));
			assert.match(stop.stdout, /stopped/);
			assert.match(stop.stdout, /writes: all writes committed/);
			assert.equal(sup.isMounted(mnt), false, "unmounted after stop");
			await sup.waitFor(() => !sup.processesUsingRoot().includes(pid), "the backend to exit");
			assert.deepEqual(sup.pidFiles(), []);
			assert.deepEqual(sup.socketFiles(), [], "socket removed at exit");
			const after = await sup.hfMount(["status"]);
			assert.match(after.stdout, /No running daemons/);

			const onHub = await hubBytes("new.txt");
			assert.ok(onHub, "new.txt is on the Hub");
			assert.equal(Buffer.from(onHub).toString("utf8"), content);
			assert.ok(!readFileSync(sup.logFile(mnt), "utf8").includes(TOKEN), "token in the log after stop");
		} finally {
			await sup.cleanup();
		}
	});

	it("with --cache-mode file, status reports the whole-file cache filled by a read", async () => {
		const mnt = sup.freshMountpoint("mnt-filecache");
		try {
			const start = await sup.hfMount(startArgs(mnt, ["--cache-mode", "file", "--read-only"]));
			assert.equal(start.code, 0, JSON.stringify(start));
			const pid = sup.pidOf(mnt);
			const socket = sup.socketFile(mnt);
			const before = JSON.parse(await sup.queryControl(socket));
			assert.equal(before.cache_used_bytes, 0, JSON.stringify(before));
			assert.equal(before.cache_limit_bytes, CACHE_SIZE);

			// Opening seed.bin queues the download of its whole-file copy.
			assert.equal(sameBytes(new Uint8Array(readFileSync(path.join(mnt, "seed.bin"))), SEED), "equal");
			await sup.waitFor(async () => JSON.parse(await sup.queryControl(socket)).cache_used_bytes === SEED.length, "the copy of seed.bin");
			const copies = readdirSync(path.join(sup.root, `cache-${path.basename(mnt)}`, "files"), { recursive: true });
			assert.ok(copies.some((f) => /^[0-9a-f]{2}\/[0-9a-f]{64}$/.test(f)), `a copy named by its xet hash: ${copies}`);

			const status = await sup.hfMount(["status"]);
			assert.equal(status.code, 0, JSON.stringify(status));
			const row = rowFor(status.stdout, pid);
			assert.ok(row, status.stdout);
			assert.equal(row.CACHE, "68.4KiB/47.7MiB");
			assert.equal(row.SOURCE, `bucket ${bucket.name}`);
		} finally {
			await sup.cleanup();
		}
	});

	it("stop with pending writes commits them before the backend exits", async () => {
		const mnt = sup.freshMountpoint("mnt-pending");
		try {
			const start = await sup.hfMount(startArgs(mnt, HOLD_COMMITS));
			assert.equal(start.code, 0, JSON.stringify(start));
			const pid = sup.pidOf(mnt);
			const data = randomBytes(300_000, 12);
			writeFileSync(path.join(mnt, "pending.bin"), data); // written and closed

			// The kernel sends RELEASE after close() returns: wait until the file counts as closed.
			let report;
			await sup.waitFor(async () => {
				report = JSON.parse(await sup.queryControl(sup.socketFile(mnt)));
				return report.pending_commits === 1;
			}, "the closed file to be pending", 10000);
			assert.equal(report.dirty_files, 1, JSON.stringify(report));
			assert.equal(report.pending_commits, 1, JSON.stringify(report));
			assert.equal(report.pending_bytes, data.length, JSON.stringify(report));
			const status = await sup.hfMount(["status"]);
			const row = rowFor(status.stdout, pid);
			assert.ok(row, status.stdout);
			assert.equal(row.DIRTY, "1", status.stdout);
			assert.equal(row.PENDING, "1(293.0KiB)", status.stdout);
			assert.equal(await hubBytes("pending.bin"), null, "not on the Hub before stop");

			const stop = await sup.hfMount(["stop", mnt]);
			assert.equal(stop.code, 0, JSON.stringify(stop));
			assert.match(stop.stdout, /flushing 1 file/);
			assert.match(stop.stdout, /writes: all writes committed \(1 file/);
			assert.equal(sup.isMounted(mnt), false);
			const onHub = await hubBytes("pending.bin");
			assert.ok(onHub, "pending.bin is on the Hub after stop");
			assert.equal(sameBytes(onHub, data), "equal");
			assert.match(readFileSync(sup.logFile(mnt), "utf8"), /shutdown: all writes committed/);
		} finally {
			await sup.cleanup();
		}
	});

	it("writes the Hub cannot take before the flush timeout are reported by stop and committed at the next start", async () => {
		const mnt = sup.freshMountpoint("mnt-hubdown");
		const ownData = await makeDataDir("hfm-hubdata-supw-down-");
		let ownHub = await startHubOnPort({ dataDir: ownData });
		try {
			await hub.createRepo({ hubUrl: ownHub.url, accessToken: TOKEN, repo: bucket });
			const args = startArgs(mnt, [...HOLD_COMMITS, "--flush-shutdown-timeout-ms", "2000"], ownHub.url);
			const start = await sup.hfMount(args);
			assert.equal(start.code, 0, JSON.stringify(start));
			const data = randomBytes(100_000, 13);
			writeFileSync(path.join(mnt, "later.bin"), data);
			await sup.waitFor(async () => {
				const report = JSON.parse(await sup.queryControl(sup.socketFile(mnt)));
				return report.pending_commits === 1;
			}, "the closed file to be pending", 10000);

			await ownHub.kill9();
			const stop = await sup.hfMount(["stop", mnt]);
			assert.equal(stop.code, 1, JSON.stringify(stop));
			assert.match(stop.stdout, /stopped/);
			assert.match(stop.stderr, /^hf-mount stop: 1 file \(97\.7 KiB\) left pending in .*next start/);
			assert.equal(stop.stderr.trim().split("\n").length, 1, "one line");
			assert.equal(sup.isMounted(mnt), false);
			assert.deepEqual(sup.pidFiles(), []);
			assert.deepEqual(sup.socketFiles(), []);

			ownHub = await startHubOnPort({ dataDir: ownData, port: ownHub.port });
			assert.equal(await hubBytes("later.bin", ownHub.url), null, "not on the Hub while the mount was down");
			const again = await sup.hfMount(args);
			assert.equal(again.code, 0, JSON.stringify(again));
			let onHub = null;
			await sup.waitFor(async () => (onHub = await hubBytes("later.bin", ownHub.url)) !== null, "recovery", 30000);
			assert.equal(sameBytes(onHub, data), "equal");
			const stopAgain = await sup.hfMount(["stop", mnt]);
			assert.equal(stopAgain.code, 0, JSON.stringify(stopAgain));
			assert.match(stopAgain.stdout, /writes: all writes committed/);
		} finally {
			await sup.cleanup();
			await ownHub.stop();
			await removeDir(ownData);
		}
	});

	it("a backend that does not answer shows '-' and status stays quick", async () => {
		const mnt = sup.freshMountpoint("mnt-frozen");
		let pid;
		try {
			const start = await sup.hfMount(startArgs(mnt));
			assert.equal(start.code, 0, JSON.stringify(start));
			pid = sup.pidOf(mnt);
			process.kill(pid, "SIGSTOP");
			// The stop takes effect once each thread is scheduled: wait until all of them are.
			await sup.waitFor(() => allThreadsStopped(pid), "the backend to be stopped", 10000);
			const status = await sup.hfMount(["status"], { timeoutMs: 20000 });
			assert.equal(status.code, 0, JSON.stringify(status));
			assert.ok(status.ms < 5000, `status took ${status.ms} ms`);
			const row = rowFor(status.stdout, pid);
			assert.ok(row, status.stdout);
			assert.equal(row.STATE, "-");
			assert.equal(row.CACHE, "-");
			assert.equal(row.PENDING, "-");
			assert.equal(row.MOUNTPOINT, mnt);
			assert.ok(existsSync(sup.socketFile(mnt)), "a slow backend's socket is not removed");
			// stop also resumes a stopped backend so it can handle SIGTERM.
			const stop = await sup.hfMount(["stop", "--timeout-secs", "30", mnt]);
			assert.equal(stop.code, 0, JSON.stringify(stop));
			assert.ok(stop.ms < 20000, `stop took ${stop.ms} ms`);
			assert.deepEqual(sup.socketFiles(), []);
		} finally {
			if (pid) {
				try {
					process.kill(pid, "SIGCONT");
				} catch {}
			}
			await sup.cleanup();
		}
	});
});
