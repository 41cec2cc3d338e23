// Drives `hf-mount start | stop | status` for conformance tests: HOME in a temp dir of the test,
// bounded runs of the real binaries, the files under ~/.hf-mount (pids, logs, run), the
// backend's control socket, and a cleanup that kills every process whose command line names
// the test's temp dir and lazily unmounts what it mounted there, so nothing outlives a test
// even when it fails.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, readFileSync, readdirSync, mkdirSync, statSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The reference's key for a canonical mount point: no leading/trailing '/', '%' → %25, '/' → %2F.
export function mountKey(mountpoint) {
	return mountpoint.replace(/^\/+|\/+$/g, "").replaceAll("%", "%25").replaceAll("/", "%2F");
}

export class Supervisor {
	constructor(root) {
		this.root = root;
		this.binDir = process.env.HFM_BIN_DIR;
		mkdirSync(this.home(), { recursive: true });
	}

	static async create(prefix) {
		return new Supervisor(await mkdtemp(path.join(tmpdir(), prefix)));
	}

	home() {
		return path.join(this.root, "home");
	}
	pidsDir() {
		return path.join(this.home(), ".hf-mount", "pids");
	}
	logsDir() {
		return path.join(this.home(), ".hf-mount", "logs");
	}
	runDir() {
		return path.join(this.home(), ".hf-mount", "run");
	}
	pidFile(mountpoint) {
		return path.join(this.pidsDir(), `${mountKey(mountpoint)}.pid`);
	}
	logFile(mountpoint) {
		return path.join(this.logsDir(), `${mountKey(mountpoint)}.log`);
	}
	// The control socket of the backend serving `mountpoint` (short paths only: longer ones are
	// hashed by DaemonPaths::socketFile, which these tests do not need).
	socketFile(mountpoint) {
		const file = path.join(this.runDir(), `${mountKey(mountpoint)}.sock`);
		assert.ok(Buffer.byteLength(file) < 108, `socket path fits sun_path: ${file}`);
		return file;
	}

	freshMountpoint(name) {
		const dir = path.join(this.root, name);
		mkdirSync(dir, { recursive: true });
		return dir;
	}

	// Runs a command to completion with a bounded time; resolves to { code, stdout, stderr, ms }.
	run(file, args, { env = {}, timeoutMs = 90000 } = {}) {
		const started = Date.now();
		return new Promise((resolve) => {
			execFile(
				file,
				args,
				{
					env: { PATH: process.env.PATH, HOME: this.home(), ...env },
					timeout: timeoutMs,
					killSignal: "SIGKILL",
				},
				(err, stdout, stderr) => {
					const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
					resolve({ code, stdout: String(stdout), stderr: String(stderr), ms: Date.now() - started });
				},
			);
		});
	}

	hfMount(args, opts) {
		return this.run(this.binDir ? path.join(this.binDir, "hf-mount") : "hf-mount", args, opts);
	}

	isMounted(dir) {
		const lines = readFileSync("/proc/self/mountinfo", "utf8").split("\n");
		return lines.some((l) => l.split(" ")[4] === dir);
	}

	// Processes whose command line mentions this test's temp root (only backends we started can).
	processesUsingRoot() {
		const found = [];
		for (const entry of readdirSync("/proc")) {
			if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
			try {
				if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(this.root)) found.push(Number(entry));
			} catch {
				// gone meanwhile
			}
		}
		return found;
	}

	pidFiles() {
		return existsSync(this.pidsDir()) ? readdirSync(this.pidsDir()).filter((f) => f.endsWith(".pid")) : [];
	}
	socketFiles() {
		return existsSync(this.runDir()) ? readdirSync(this.runDir()).filter((f) => f.endsWith(".sock")) : [];
	}
	pidOf(mountpoint) {
		return Number(readFileSync(this.pidFile(mountpoint), "utf8").split("\n")[0]);
	}

	async waitFor(predicate, what, timeoutMs = 15000) {
		const deadline = Date.now() + timeoutMs;
		while (Date.now() < deadline) {
			if (await predicate()) return;
			await sleep(100);
		}
		assert.fail(`timed out waiting for ${what}`);
	}

	// One request on the control socket; resolves to the raw answer line (bounded).
	queryControl(socket, request = '{"op":"status"}\n', timeoutMs = 5000) {
		return new Promise((resolve, reject) => {
			let data = "";
			const conn = createConnection(socket);
			const timer = setTimeout(() => {
				conn.destroy();
				reject(new Error(`no answer on ${socket} within ${timeoutMs} ms`));
			}, timeoutMs);
			conn.on("connect", () => conn.write(request));
			conn.on("data", (d) => (data += d.toString()));
			conn.on("error", (e) => {
				clearTimeout(timer);
				reject(e);
			});
			conn.on("end", () => {
				clearTimeout(timer);
				resolve(data.trim());
			});
		});
	}

	// File mode bits (e.g. 0o600).
	static mode(file) {
		return statSync(file).mode & 0o777;
	}

	// Last resort: nothing this test started survives it.
	async cleanup() {
		for (const pid of this.processesUsingRoot()) {
			try {
				process.kill(pid, "SIGCONT");
				process.kill(pid, "SIGKILL");
			} catch {
				// already gone
			}
		}
		for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
			const mnt = line.split(" ")[4];
			if (mnt && mnt.startsWith(this.root)) await this.run("umount", ["-l", mnt], { timeoutMs: 10000 });
		}
	}

	async remove() {
		await this.cleanup();
		await rm(this.root, { recursive: true, force: true });
	}
}

// Parses `hf-mount status` output into rows keyed by the header's column names.
export function parseStatusTable(stdout) {
	const lines = stdout.split("\n").filter((l) => l.trim() !== "");
	if (lines.length === 0 || !lines[0].startsWith("PID")) return [];
	const header = lines[0].split(/\s+/);
	return lines.slice(1).map((line) => {
		const cells = line.split(/\s+/);
		// MOUNTPOINT is last and SOURCE ("bucket ns/name") has one space: rejoin from the ends.
		const row = {};
		for (let i = 0; i < header.length - 2; i++) row[header[i]] = cells[i];
		row.MOUNTPOINT = cells[cells.length - 1];
		row.SOURCE = cells.slice(header.length - 2, cells.length - 1).join(" ");
		return row;
	});
}
