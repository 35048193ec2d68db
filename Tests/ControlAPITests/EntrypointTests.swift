import Flash
import Foundation
import Testing
import VPhoneTesting

/// The built `vphone` beside this test bundle (or `$VPHONE_BIN`), and whether its `boot` has the control API.
enum VPhoneBinary {
    static let path: String = {
        if let env = ProcessInfo.processInfo.environment["VPHONE_BIN"], !env.isEmpty { return env }
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return exe.deletingLastPathComponent().appendingPathComponent("vphone").path
    }()

    static let hasControlAPI: Bool = {
        guard FileManager.default.isExecutableFile(atPath: path),
            let help = try? run(path, ["boot", "--help"]).stdout
        else { return false }
        return help.contains("--http-port")
    }()

    static let skipReason: Comment =
        "the vphone binary (\(path)) is missing or its boot has no --http-port yet (ControlServer not wired into Boot)"
}

/// docker/entrypoint.sh outside Docker, running the real `vphone boot` from `VPHONE_*` variables as the image does:
/// the flash where VPHONE_FLASH says, the API and its health check, the status page in a real browser, and SIGTERM.
@Suite("container entry point", .serialized, .enabled(if: VPhoneBinary.hasControlAPI, VPhoneBinary.skipReason))
struct EntrypointTests {
    static let entrypoint = TestProfiles.repositoryRoot + "/docker/entrypoint.sh"
    static let healthcheck = TestProfiles.repositoryRoot + "/docker/healthcheck.sh"

    func environment(_ dir: String, _ prov: ProvTree, _ extra: [String: String] = [:]) -> [String: String] {
        var env = [
            "VPHONE_BIN": VPhoneBinary.path,
            "VPHONE_PROFILE": TestProfiles.utg300Path,
            "VPHONE_MAC": testMAC,
            "VPHONE_PROV_URL": prov.nginx.baseURL + "/",
            "VPHONE_FLASH": dir + "/volume/phone.flash",  // a directory that does not exist yet
        ]
        for (k, v) in extra { env[k] = v }
        return env
    }

    @Test func onceFromTheEnvironmentWritesTheFlashOnTheVolume() throws {
        let prov = try ProvTree()
        let dir = try temporaryDirectory("vphone-entry")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try run(
            "/bin/sh",
            [Self.entrypoint],
            environment: environment(dir, prov, ["VPHONE_ONCE": "1"]),
            cwd: dir
        )
        #expect(r.code == 0, "\(r.stderr)")
        let store = try FlashStore.open(at: dir + "/volume/phone.flash", readOnly: true)
        let snapshot = try store.load()
        #expect(snapshot.identity.mac.upper == testMAC)
        #expect(snapshot.bootCount == 1)
        store.close()
        // a second run on the same volume is a reboot of the same phone
        let again = try run("/bin/sh", [Self.entrypoint, "--once"], environment: environment(dir, prov), cwd: dir)
        #expect(again.code == 0, "\(again.stderr)")
        let reopened = try FlashStore.open(at: dir + "/volume/phone.flash", readOnly: true)
        #expect(try reopened.load().bootCount == 2)
        reopened.close()
        // other vphone commands pass through
        let show = try run(
            "/bin/sh",
            [Self.entrypoint, "config", "show", "--flash", dir + "/volume/phone.flash", "--changed"],
            environment: environment(dir, prov),
            cwd: dir
        )
        #expect(show.code == 0, "\(show.stderr)")
        #expect(show.stdout.contains("NTP_ADDR"))
        // a bad variable is a bad command line, not a silent default
        let bad = try run(
            "/bin/sh",
            [Self.entrypoint],
            environment: environment(dir, prov, ["VPHONE_TIME_SCALE": "fast"]),
            cwd: dir
        )
        #expect(bad.code == 64, "\(bad.stderr)")
    }

    @Test func servesTheAPIPassesTheHealthCheckAndStopsCleanlyOnSIGTERM() async throws {
        let prov = try ProvTree()
        let dir = try temporaryDirectory("vphone-entry")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let port = NginxServer.freePort()
        let env = environment(dir, prov, ["VPHONE_HTTP_PORT": String(port), "VPHONE_ADMIN_PASSWORD": "pw-123"])
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = [Self.entrypoint]
        process.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
        process.currentDirectoryURL = URL(fileURLWithPath: dir)
        let errPath = dir + "/stderr"
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: errPath)
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

        // the health check script, as Docker runs it, turns healthy once the phone is up
        var healthy = false
        for _ in 0..<200 where !healthy {
            let r = try await runAsync("/bin/sh", [Self.healthcheck], environment: ["VPHONE_HTTP_PORT": String(port)])
            healthy = r.code == 0 && r.stdout == "ok\n"
            if !healthy { try await Task.sleep(nanoseconds: 25_000_000) }
        }
        #expect(healthy, "\((try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "")")
        let base = "http://127.0.0.1:\(port)"
        #expect(try await http("GET", base + "/status").status == 401)
        let status = try await http("GET", base + "/status", user: "admin", password: "pw-123").object
        #expect(status["mac"] as? String == testMAC)
        #expect(status["state"] as? String == "idle")
        let resync = try await http("POST", base + "/resync", user: "admin", password: "pw-123")
        #expect(resync.object["outcome"] as? String == "provisioned")
        // `exec`: the shell is gone, the phone itself has the process id Docker signals
        let comm = try String(contentsOfFile: "/proc/\(process.processIdentifier)/comm", encoding: .utf8)
        #expect(comm.trimmingCharacters(in: .whitespacesAndNewlines) == "vphone")

        let start = Date()
        kill(process.processIdentifier, SIGTERM)
        while process.isRunning && Date().timeIntervalSince(start) < 5 { try await Task.sleep(nanoseconds: 5_000_000) }
        // Stopped within the 5 s above (docker's grace period is 10 s); how fast is measured, not asserted (README).
        #expect(!process.isRunning)
        #expect(process.terminationStatus == 0)
        // the flash is consistent after the stop, and knows both cycles
        let store = try FlashStore.open(at: dir + "/volume/phone.flash", readOnly: true)
        try store.integrityCheck()
        #expect(try store.load().bootCount == 1)
        #expect(try store.events(boot: 1, limit: nil).filter { $0.kind == "apply" }.count == 2)
        store.close()
    }

    @Test(.enabled(if: findExecutable("chromium") != nil, "chromium is not installed: apt-get install chromium"))
    func statusPageLoadsInAHeadlessBrowser() async throws {
        let prov = try ProvTree()
        let dir = try temporaryDirectory("vphone-entry")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let port = NginxServer.freePort()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = [Self.entrypoint]
        process.environment = ProcessInfo.processInfo.environment.merging(
            environment(dir, prov, ["VPHONE_HTTP_PORT": String(port)])
        ) { $1 }
        process.standardError = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        defer {
            kill(process.processIdentifier, SIGTERM)
            process.waitUntilExit()
        }
        var up = false
        for _ in 0..<200 where !up {
            up = (try? await http("GET", "http://127.0.0.1:\(port)/healthz").status) == 200
            if !up { try await Task.sleep(nanoseconds: 25_000_000) }
        }
        #expect(up)
        let r = try await runAsync(
            findExecutable("chromium")!,
            [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--user-data-dir=\(dir)/chromium",
                "--dump-dom", "http://127.0.0.1:\(port)/",
            ]
        )
        #expect(r.code == 0, "\(r.stderr)")
        // the DOM as the browser built it: the MAC in its place, the tables, no script
        #expect(r.stdout.contains("<span class=\"mono\" id=\"mac\">\(testMAC)</span>"), "\(r.stdout.prefix(500))")
        #expect(r.stdout.contains("KX-UTG300 Web User Interface"))
        #expect(r.stdout.contains("pool.ntp.org"))
        #expect(!r.stdout.contains("<script"))
    }
}
