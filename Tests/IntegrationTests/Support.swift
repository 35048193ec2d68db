import Foundation
import PhoneCore
import Testing
import VPhoneTesting

/// A provisioning tree in a temporary directory served by a real nginx on 127.0.0.1.
final class ProvServer: @unchecked Sendable {
    let root: String
    let nginx: NginxServer

    /// Starts nginx on a copy of `examples/prov` (its `http://127.0.0.1:8780` rewritten to this server).
    init(tls: Bool = false, extraConfig: String = "") throws {
        root = try makeTemporaryDirectory(prefix: "vphone-prov")
        nginx = try NginxServer(root: root, tls: tls, extraConfig: extraConfig)
        let examples = TestProfiles.repositoryRoot + "/examples/prov"
        for name in try FileManager.default.contentsOfDirectory(atPath: examples) {
            let text = try String(contentsOfFile: examples + "/" + name, encoding: .utf8)
            try write(name, text.replacingOccurrences(of: "http://127.0.0.1:8780", with: base))
        }
    }

    deinit {
        nginx.stop()
        try? FileManager.default.removeItem(atPath: root)
    }

    /// The URL the phone uses (plain or TLS).
    var base: String { nginx.tlsBaseURL ?? nginx.baseURL }

    func write(_ name: String, _ text: String) throws {
        try text.write(toFile: root + "/" + name, atomically: true, encoding: .utf8)
    }

    func remove(_ name: String) throws {
        try FileManager.default.removeItem(atPath: root + "/" + name)
    }

    /// Requests nginx logged, as "METHOD PATH STATUS" plus the user agent.
    func requests(atLeast n: Int = 0) throws -> [String] {
        try nginx.accessLog(atLeast: n)
    }
}

func makeTemporaryDirectory(prefix: String) throws -> String {
    let path = NSTemporaryDirectory() + "\(prefix)-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// The result of running the `vphone` executable.
struct Run {
    var code: Int32
    var stdout: String
    var stderr: String
}

/// The `vphone` binary built beside this test bundle (or `$VPHONE_BIN`).
let vphoneBinary: String = {
    if let env = ProcessInfo.processInfo.environment["VPHONE_BIN"] { return env }
    let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    return exe.deletingLastPathComponent().appendingPathComponent("vphone").path
}()

/// Runs `vphone args...` in `cwd` and waits for it.
@discardableResult
func vphone(_ args: [String], cwd: String, environment: [String: String] = [:]) throws -> Run {
    let p = try startVPhone(args, cwd: cwd, environment: environment)
    return p.wait()
}

final class RunningVPhone: @unchecked Sendable {
    let process: Process
    let out: String
    let err: String

    init(process: Process, out: String, err: String) {
        self.process = process
        self.out = out
        self.err = err
    }

    func wait() -> Run {
        process.waitUntilExit()
        return Run(
            code: process.terminationStatus,
            stdout: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
        )
    }

    func signal(_ sig: Int32) { kill(process.processIdentifier, sig) }
}

func startVPhone(_ args: [String], cwd: String, environment: [String: String] = [:]) throws -> RunningVPhone {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: vphoneBinary)
    p.arguments = args
    p.currentDirectoryURL = URL(fileURLWithPath: cwd)
    var env = ProcessInfo.processInfo.environment
    env["VPHONE_PROFILE"] = TestProfiles.utg300Path
    for (k, v) in environment { env[k] = v }
    p.environment = env
    let id = UUID().uuidString.prefix(8)
    let out = cwd + "/.stdout-\(id)"
    let err = cwd + "/.stderr-\(id)"
    _ = FileManager.default.createFile(atPath: out, contents: nil)
    _ = FileManager.default.createFile(atPath: err, contents: nil)
    p.standardOutput = FileHandle(forWritingAtPath: out)
    p.standardError = FileHandle(forWritingAtPath: err)
    p.standardInput = FileHandle.nullDevice
    try p.run()
    return RunningVPhone(process: p, out: out, err: err)
}

/// `vphone config show --json` as a dictionary NAME -> (value, source).
func configShow(flash: String, cwd: String) throws -> [String: (value: String, source: String)] {
    let r = try vphone(["config", "show", "--flash", flash, "--json"], cwd: cwd)
    guard r.code == 0 else { throw TestFailure("config show failed (\(r.code)): \(r.stderr)") }
    let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: [String: String]] ?? [:]
    return object.mapValues { ($0["value"] ?? "", $0["source"] ?? "") }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

let mac = "0080F0C571EB"

/// A running `vphone testserver` (or `serve`) and its rules file.
final class TestServerProcess: @unchecked Sendable {
    let process: RunningVPhone
    let origin: String
    let port: Int
    let rulesFile: String

    /// Starts `vphone COMMAND [TREE] --port P [EXTRA...]` (a testserver also gets a rules file holding `rules`) and
    /// returns once it listens.
    init(
        _ command: String = "testserver",
        tree: String?,
        dir: String,
        rules: String = "",
        extra: [String] = []
    ) async throws {
        rulesFile = dir + "/rules-\(UUID().uuidString.prefix(6)).txt"
        try rules.write(toFile: rulesFile, atomically: true, encoding: .utf8)
        port = NginxServer.freePort()
        origin = "http://127.0.0.1:\(port)"
        var args = [command] + (tree.map { [$0] } ?? []) + ["--port", String(port)]
        if command == "testserver" { args += ["--rules-file", rulesFile] }
        args += extra
        process = try startVPhone(args, cwd: dir)
        let deadline = Date().addingTimeInterval(20)
        // One more look after the deadline: on a busy machine this task may wake up late.
        while true {
            if !process.process.isRunning { throw TestFailure("server exited: \(process.wait().stderr)") }
            if let text = try? String(contentsOfFile: process.err, encoding: .utf8), text.contains(":\(port)/") {
                return
            }
            if Date() > deadline { break }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        process.signal(SIGKILL)
        throw TestFailure("vphone \(command) did not start on port \(port)")
    }

    /// Replaces the rules; the server reads the file again at its next request.
    func setRules(_ lines: [String]) throws {
        try (lines.joined(separator: "\n") + "\n").write(toFile: rulesFile, atomically: true, encoding: .utf8)
    }

    var stderr: String { (try? String(contentsOfFile: process.err, encoding: .utf8)) ?? "" }

    func stop() -> Run {
        process.signal(SIGTERM)
        return process.wait()
    }
}
