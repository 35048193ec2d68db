import Foundation
import Testing
import VPhoneTesting

/// `vphone testserver` / `vphone serve` seen by a real client (the curl command: shares no code with FlyingFox or
/// vphone's transport). The server runs as its own process: in the test process it would share the busy thread pool
/// with every other test.
@Suite struct TestServerProcessTests {
    /// Runs the curl command on a thread of its own: blocking a cooperative thread while the server (on the same
    /// pool) answers would starve the server.
    func curl(_ args: [String]) async throws -> Reply {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try curlBlocking(args) }) }.start()
        }
    }

    struct Reply: Equatable {
        var status: String
        var body: String
        init(_ status: String, _ body: String) {
            self.status = status
            self.body = body
        }
    }

    func curlBlocking(_ args: [String]) throws -> Reply {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["curl", "--silent", "--max-time", "10", "--write-out", "\n%{http_code}"] + args
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        return Reply(String(lines.last ?? ""), lines.dropLast().joined(separator: "\n"))
    }

    @Test func pathsThatLeaveTheTreeAreNotServed() async throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-tree")
        let outside = try makeTemporaryDirectory(prefix: "vphone-outside")
        defer {
            try? FileManager.default.removeItem(atPath: dir)
            try? FileManager.default.removeItem(atPath: outside)
        }
        try "secret".write(toFile: outside + "/secret.txt", atomically: true, encoding: .utf8)
        try "inside".write(toFile: dir + "/a.cfg", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(
            atPath: dir + "/link.cfg",
            withDestinationPath: outside + "/secret.txt"
        )
        try FileManager.default.createDirectory(atPath: dir + "/sub", withIntermediateDirectories: true)
        let server = try await TestServerProcess(tree: dir, dir: outside)
        #expect(try await curl([server.origin + "/a.cfg"]) == Reply("200", "inside"))
        #expect(
            try await curl(["--path-as-is", server.origin + "/sub/../../" + outside + "/secret.txt"]).status == "404"
        )
        #expect(try await curl(["--path-as-is", server.origin + "/../etc/passwd"]).status == "404")
        #expect(try await curl([server.origin + "/link.cfg"]).status == "404")
        #expect(try await curl([server.origin + "/sub"]).status == "404")
        #expect(try await curl(["--request", "POST", server.origin + "/a.cfg"]).status == "405")
        let head = try await curl(["--head", server.origin + "/a.cfg"])
        #expect(head.body.lowercased().contains("content-length: 6"), "\(head.body)")
        _ = server.stop()
    }

    @Test func theBuiltInTreeNamesTheServerItIsServedFrom() async throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-builtin")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try await TestServerProcess("serve", tree: nil, dir: dir)
        let initial = try await curl([server.origin + "/KX-UTG300.cfg"])
        #expect(initial.status == "200")
        #expect(initial.body.contains("<CFG_MASTER_FILE_PATH>\(server.origin)/ConfigCom.cfg</CFG_MASTER_FILE_PATH>"))
        #expect(!initial.body.contains("8780"))
        _ = server.stop()
    }

    @Test func misbehavioursOnTheWire() async throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-wire")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try await TestServerProcess(tree: nil, dir: dir)
        let path = "/ConfigCom.cfg"
        let whole = try await curl([server.origin + path]).body
        try server.setRules(["\(path)=over-length"])
        // curl stops reading at Content-Length: the phone sees half the file.
        #expect(try await curl([server.origin + path]).body.utf8.count == whole.utf8.count / 2)
        try server.setRules(["\(path)=close-mid-body"])
        let cut = try await curl([server.origin + path])
        #expect(cut.body.utf8.count == whole.utf8.count / 2)
        try server.setRules(["\(path)=redirect-file"])
        #expect(try await curl(["--head", server.origin + path]).body.contains("file:///etc/passwd"))
        try server.setRules(["\(path)=auth-forever"])
        #expect(try await curl(["--user", "admin:admin", server.origin + path]).status == "401")
        try server.setRules(["/Config????????????.cfg=wrong-mac"])
        // The built-in tree has one MAC only: no other phone's file to serve.
        #expect(try await curl([server.origin + "/Config0080F0C571EB.cfg"]).status == "404")
        try server.setRules(["\(path)=endless"])
        // A body that never ends: after two seconds curl has far more than any provisioning file (and gives up).
        let endless = try await curl([
            "--output", "/dev/null", "--write-out", "\n%{http_code} %{size_download}", "--max-time", "2",
            server.origin + path,
        ])
        #expect(endless.status.hasPrefix("200 "))
        #expect((Int(endless.status.split(separator: " ").last ?? "") ?? 0) > 1_000_000, "\(endless)")
        try server.setRules(["\(path)=stall:30"])
        #expect(try await curl(["--max-time", "1", server.origin + path]).status == "000")
        let stopped = server.stop()
        #expect(stopped.code == 0, "\(stopped.stderr)")
        let log = stopped.stdout.split(separator: "\n")
        #expect(log.count == 8, "\(stopped.stdout)")
        // A stalled request is logged when it starts, with no status.
        #expect(
            log.last == "GET /ConfigCom.cfg - 0 \"curl/7.88.1\" rule=/ConfigCom.cfg=stall:30"
                || log.last?.hasPrefix("GET /ConfigCom.cfg - 0 \"curl/") == true,
            "\(stopped.stdout)"
        )
    }

    @Test func theRulesFileIsReadAgainWhenItChangesAndABadOneKeepsTheOldRules() async throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-rules")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try await TestServerProcess(tree: nil, dir: dir, rules: "# broken master\n/ConfigCom.cfg=503\n")
        let url = server.origin + "/ConfigCom.cfg"
        #expect(try await curl([url]).status == "503")
        try server.setRules(["/ConfigCom.cfg=503", "/Config*=teapot"])
        #expect(try await curl([url]).status == "503")
        #expect(
            server.stderr.contains("\(server.rulesFile):2: \"/Config*=teapot\": unknown behaviour"),
            "\(server.stderr)"
        )
        #expect(server.stderr.contains("keeping the rules it had"), "\(server.stderr)")
        try server.setRules([])
        #expect(try await curl([url]).status == "200")
        _ = server.stop()
    }

    /// A rule whose number the server cannot use (it used to crash the running server when the file was read again,
    /// or at the first matching request) is a rules file that does not parse: the old rules stay.
    @Test func aRulesFileWithANumberOutOfRangeKeepsTheOldRulesAndTheServerRuns() async throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-rules-range")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try await TestServerProcess(tree: nil, dir: dir, rules: "/ConfigCom.cfg=503\n")
        let url = server.origin + "/ConfigCom.cfg"
        #expect(try await curl([url]).status == "503")
        for bad in ["/ConfigCom.cfg=trickle:1e30", "/ConfigCom.cfg=stall:2e10"] {
            try server.setRules([bad])
            #expect(try await curl([url]).status == "503")
            #expect(server.stderr.contains("\(server.rulesFile):1: \"\(bad)\": "), "\(server.stderr)")
        }
        #expect(server.stderr.contains("keeping the rules it had"), "\(server.stderr)")
        let stopped = server.stop()
        #expect(stopped.code == 0, "\(stopped.stderr)")
    }

    @Test func wrongMACServesAnotherPhonesFile() async throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-macs")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/tree", withIntermediateDirectories: true)
        try "mine".write(toFile: dir + "/tree/Config0080F0C571EB.cfg", atomically: true, encoding: .utf8)
        try "theirs".write(toFile: dir + "/tree/Config0080F0000002.cfg", atomically: true, encoding: .utf8)
        let server = try await TestServerProcess(
            tree: dir + "/tree",
            dir: dir,
            rules: "/Config0080F0C571EB.cfg=wrong-mac\n"
        )
        #expect(try await curl([server.origin + "/Config0080F0C571EB.cfg"]) == Reply("200", "theirs"))
        #expect(try await curl([server.origin + "/Config0080F0000002.cfg"]) == Reply("200", "theirs"))
        _ = server.stop()
    }
}
