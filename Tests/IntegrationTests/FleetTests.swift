import Flash
import Foundation
import PhoneCore
import Testing
import Transport
import VPhoneTesting

/// `vphone fleet` against a real nginx: counts that agree with the server's own access log.
@Suite("vphone fleet against nginx", .serialized)
struct FleetTests {
    static let first = MAC("0080F0100001")!

    /// A tree with a standard file for each of `count` phones, and the example product and master files.
    func fleetServer(count: Int, extraConfig: String = "") throws -> ProvServer {
        let server = try ProvServer(extraConfig: extraConfig)
        let template = try String(contentsOfFile: server.root + "/Config0080F0C571EB.cfg", encoding: .utf8)
        for i in 0..<count {
            let mac = Self.first.advanced(by: UInt64(i)).upper
            try server.write("Config\(mac).cfg", template.replacingOccurrences(of: ">201<", with: ">\(1000 + i)<"))
        }
        return server
    }

    /// What a run left in its directory (not the dot-files that hold its captured output).
    func files(in dir: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir).filter { !$0.hasPrefix(".") }.sorted()
    }

    func report(_ path: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
    }

    func fleet(_ server: ProvServer, _ extra: [String], count: Int = 200, cwd: String) throws -> Run {
        try vphone(
            ["fleet", "--count", "\(count)", "--mac-start", Self.first.upper, "--prov-url", server.base, "--quiet"]
                + extra,
            cwd: cwd
        )
    }

    @Test func twoHundredPhonesAllProvisionedAndTheServerAgrees() throws {
        let server = try fleetServer(count: 200)
        let dir = try makeTemporaryDirectory(prefix: "vphone-fleet")
        let r = try fleet(
            server,
            ["--report", "r.json", "--csv", "r.csv", "--html", "r.html", "--store", "s.db"],
            cwd: dir
        )
        #expect(r.code == 0, "\(r.stderr)")
        let rep = try report(dir + "/r.json")
        #expect(rep["phones"] as? Int == 200)
        #expect(rep["provisioned"] as? Int == 200)
        #expect(rep["failed"] as? Int == 0)
        #expect(rep["requests"] as? Int == 800)
        let log = try server.requests(atLeast: 800)
        #expect(log.count == 800)
        // every phone asked for its own standard file, with its own exact User-Agent
        let expected = Set((0..<200).map { Self.first.advanced(by: UInt64($0)) })
        let agents = Set(
            log.compactMap { line -> String? in
                let parts = line.split(separator: "\"")
                return parts.count > 3 ? String(parts[3]) : nil
            }
        )
        #expect(agents == Set(expected.map { "Panasonic_KX-UTG300/03.210 (\($0.lower))" }))
        let asked = Set(
            log.compactMap { line -> String? in
                guard let r = line.range(of: "GET /Config0080F01"), let end = line[r.upperBound...].firstIndex(of: ".")
                else {
                    return nil
                }
                return "0080F01" + line[r.upperBound..<end]
            }
        )
        #expect(asked == Set(expected.map(\.upper)))
        // a phone never borrows another phone's connection: 800 requests, 800 connections
        #expect(Set(log.map { $0.split(separator: " ").dropLast().last ?? "" }).count == 800)
        let csv = try String(contentsOfFile: dir + "/r.csv", encoding: .utf8).split(separator: "\n")
        #expect(csv.count == 201)
        #expect(try String(contentsOfFile: dir + "/r.html", encoding: .utf8).contains("<svg"))

        // Any phone of the load test can be pulled out and booted alone, with the same configuration.
        let phone = Self.first.advanced(by: 42)
        #expect(try vphone(["flash", "extract", "s.db", "--mac", phone.upper, "--to", "p.flash"], cwd: dir).code == 0)
        let before = try configShow(flash: dir + "/p.flash", cwd: dir)
        #expect(before["PHONE_NUMBER_1"]! == ("1042", "standard"))
        let alone = try vphone(["boot", "--flash", "p.flash", "--prov-url", server.base, "--once"], cwd: dir)
        #expect(alone.code == 0, "\(alone.stderr)")
        let after = try configShow(flash: dir + "/p.flash", cwd: dir)
        #expect(after.mapValues(\.value) == before.mapValues(\.value))
    }

    @Test func failureClassesAreCountedExactly() throws {
        // 10% of MACs get 404 for their standard file; 5% get a server that stalls.
        var stalled: [String] = []
        for i in stride(from: 1, to: 200, by: 20) { stalled.append(Self.first.advanced(by: UInt64(i)).upper) }
        let stall = stalled.map { "location = /Config\($0).cfg { limit_rate 1; }" }.joined(separator: "\n")
        let server = try fleetServer(count: 200, extraConfig: stall)
        for i in stride(from: 0, to: 200, by: 10) {
            try server.remove("Config\(Self.first.advanced(by: UInt64(i)).upper).cfg")
        }
        // Another 5% get an error page served as 200, and 5% a file that looks encrypted but no key opens: the
        // transfers succeed, the phone rejects what they hold.
        for i in stride(from: 5, to: 200, by: 20) {
            try server.write(
                "Config\(Self.first.advanced(by: UInt64(i)).upper).cfg",
                "<html>Service Unavailable</html>"
            )
            try server.write(
                "Config\(Self.first.advanced(by: UInt64(i + 10)).upper).cfg",
                "U2FsdGVkX1" + String(repeating: "A", count: 64)
            )
        }
        let dir = try makeTemporaryDirectory(prefix: "vphone-fleet")
        // A profile whose phones give up after 1.5 s.
        var profile = try String(contentsOfFile: TestProfiles.utg300Path, encoding: .utf8)
        profile = profile.replacingOccurrences(of: "\"totalTimeoutMs\": 60000", with: "\"totalTimeoutMs\": 1500")
        try profile.write(toFile: dir + "/fast.json", atomically: true, encoding: .utf8)
        let r = try fleet(server, ["--report", "r.json", "--profile", dir + "/fast.json"], cwd: dir)
        #expect(r.code == 0, "\(r.stderr)")
        let rep = try report(dir + "/r.json")
        #expect(rep["provisioned"] as? Int == 150)
        #expect(rep["fell_back"] as? Int == 50)
        #expect(rep["requests"] as? Int == 800)
        let errors = rep["errors"] as? [String: Int] ?? [:]
        #expect(errors == ["http_status": 20, "timeout": 10, "invalid_file": 10, "decryption": 10])
        let statuses = rep["http_status"] as? [String: Int] ?? [:]
        #expect(statuses["404"] == 20)
        #expect(statuses["200"] == 770, "the rejected files were served as 200")
        let byFile = rep["requests_by_file"] as? [String: [String: Int]] ?? [:]
        #expect(
            byFile["standard"] == ["ok": 150, "http_status": 20, "timeout": 10, "invalid_file": 10, "decryption": 10]
        )
        let rejected = try fleet(
            server,
            ["--profile", dir + "/fast.json", "--fail-if", "errors.invalid_file>0"],
            cwd: dir
        )
        #expect(rejected.code == 1, "\(rejected.stderr)")

        // --fail-if sets the exit code
        let failing = try fleet(server, ["--profile", dir + "/fast.json", "--fail-if", "fell_back>0"], cwd: dir)
        #expect(failing.code == 1)
        #expect(failing.stderr.contains("fell_back"))
        let passing = try fleet(server, ["--profile", dir + "/fast.json", "--fail-if", "failed>0"], cwd: dir)
        #expect(passing.code == 0, "\(passing.stderr)")
    }

    @Test func shardReportsMergeToTheUnshardedCounts() throws {
        let server = try fleetServer(count: 200)
        for i in stride(from: 3, to: 200, by: 7) {
            try server.remove("Config\(Self.first.advanced(by: UInt64(i)).upper).cfg")
        }
        let dir = try makeTemporaryDirectory(prefix: "vphone-fleet")
        #expect(try fleet(server, ["--report", "all.json"], cwd: dir).code == 0)
        for k in 1...3 {
            #expect(try fleet(server, ["--report", "s\(k).json", "--shard", "\(k)/3"], cwd: dir).code == 0)
        }
        let merged = try vphone(["report", "merge", "s1.json", "s2.json", "s3.json", "--to", "m.json"], cwd: dir)
        #expect(merged.code == 0, "\(merged.stderr)")
        let all = try report(dir + "/all.json")
        let m = try report(dir + "/m.json")
        for key in ["phones", "provisioned", "fell_back", "failed", "requests"] {
            #expect(m[key] as? Int == all[key] as? Int, "\(key)")
        }
        #expect(m["errors"] as? [String: Int] == all["errors"] as? [String: Int])
        #expect(m["http_status"] as? [String: Int] == all["http_status"] as? [String: Int])
    }

    /// `report merge` never counts a phone twice, never writes over a report it reads, and never traps on counts.
    @Test func reportMergeRefusesCountingPhonesTwiceAndReplacingAnInput() throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-merge")
        // Runs against a dead server: quick, and every phone still counts.
        for (name, extra) in [("r1", []), ("r2", []), ("s1", ["--shard", "1/2"]), ("s2", ["--shard", "2/2"])] {
            let run = try vphone(
                ["fleet", "--count", "4", "--prov-url", "http://127.0.0.1:1/", "--quiet", "--report", name + ".json"]
                    + extra,
                cwd: dir
            )
            #expect(run.code == 0, "\(run.stderr)")
        }
        try FileManager.default.copyItem(atPath: dir + "/r1.json", toPath: dir + "/copy.json")
        try FileManager.default.copyItem(atPath: dir + "/s2.json", toPath: dir + "/s2-copy.json")
        try FileManager.default.createSymbolicLink(atPath: dir + "/link.json", withDestinationPath: "r1.json")
        let r1 = try Data(contentsOf: URL(fileURLWithPath: dir + "/r1.json"))
        for (args, code, says) in [
            // the same file twice, however spelt: a bad command line
            (["r1.json", "r1.json"], 64, "the report r1.json is given twice: give each report once"),
            (["r1.json", "./r1.json"], 64, "the report r1.json is given twice (as r1.json and ./r1.json)"),
            (["link.json", "r1.json"], 64, "the report link.json is given twice (as link.json and r1.json)"),
            // an output that is an input
            (["r1.json", "r2.json", "--to", "r1.json"], 64, "--to r1.json is the report r1.json, which it would"),
            (["s1.json", "s2.json", "--html", "./s2.json"], 64, "--html ./s2.json is the report s2.json"),
            (["r1.json", "r2.json", "--to", "link.json"], 64, "--to link.json is the report r1.json"),
            // two files of one run
            (["r1.json", "copy.json"], 65, "r1.json and copy.json are reports of the same run (both unsharded"),
            (["s1.json", "s2.json", "s2-copy.json"], 65, "shard 2/2 is in more than one report (s2.json and s2-copy"),
        ] {
            let r = try vphone(["report", "merge"] + args, cwd: dir)
            #expect(r.code == Int32(code), "\(args): \(r.stderr)")
            #expect(r.stderr.contains(says), "\(args): \(r.stderr)")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/r1.json")) == r1, "r1.json is untouched")
        // Distinct runs and distinct shards still merge.
        for (args, phones) in [(["r1.json", "r2.json"], 8), (["s1.json", "s2.json"], 4)] {
            let r = try vphone(["report", "merge"] + args + ["--to", "m.json"], cwd: dir)
            #expect(r.code == 0, "\(args): \(r.stderr)")
            #expect(try report(dir + "/m.json")["phones"] as? Int == phones, "\(args)")
        }
        // Counts that overflow when added: exit 65 naming the count and the files, not a trap (exit 132).
        for (name, count) in [("s1", 5_000_000_000_000_000_000), ("s2", 4_600_000_000_000_000_000)] {
            var json = try report(dir + "/\(name).json")
            json["http_status"] = ["200": count]
            try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: dir + "/big-\(name).json"))
        }
        let big = try vphone(["report", "merge", "big-s1.json", "big-s2.json"], cwd: dir)
        #expect(big.code == 65, "\(big.stderr)")
        #expect(
            big.stderr.contains("http_status.200 counts overflow when merged (big-s1.json, big-s2.json)"),
            "\(big.stderr)"
        )
    }

    @Test func badFleetCommandLines() throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-fleet")
        try FileManager.default.createDirectory(atPath: dir + "/reports", withIntermediateDirectories: false)
        let fleet = ["fleet", "--count", "5", "--prov-url", "http://127.0.0.1:1/"]
        // Each is refused before any phone starts, with what is wrong in the words of the option.
        for (args, says) in [
            (["fleet", "--count", "0", "--prov-url", "http://127.0.0.1:1/"], "--count must be 1...1000000"),
            (["fleet", "--count", "5", "--prov-url", "file:///etc/passwd"], "\"file\" is refused"),
            (fleet + ["--fail-if", "p99>>3"], "one comparison only"),
            (fleet + ["--shard", "4/3"], "there is no shard 4 of 3"),
            (fleet + ["--shard", "1/0"], "N, the number of shards, must be at least 1"),
            (fleet + ["--source-ips", "300.0.0.0/24"], "expected an IPv4 CIDR block"),
            // TEST-NET-2 is no host's (this machine has a TEST-NET-1 address): every phone would fail to bind,
            // counted as "other" errors of the server.
            (fleet + ["--source-ips", "198.51.100.0/30"], "of 4 address(es) are not this host's (198.51.100."),
            // Every phone's MAC is unicast: not the start, nor one further on (nor, so, a range wrapping round past
            // FFFFFFFFFFFF to 000000000000).
            (fleet + ["--mac-start", "FFFFFFFFFFFE"], "--mac-start FFFFFFFFFFFE is a multicast address"),
            (fleet + ["--mac-start", "000000000000"], "--mac-start 000000000000 is all zeros"),
            (fleet + ["--mac-start", "0180C2000000"], "--mac-start 0180C2000000 is a multicast address"),
            (
                fleet + ["--mac-start", "FEFFFFFFFFFE"],
                "--mac-start FEFFFFFFFFFE with --count 5 runs into FF0000000000, a multicast address (the first "
                    + "octet is odd): a phone's MAC is unicast; give --count 2 or less, or start at FEFFFFFFFFFB or lower"
            ),
            (fleet + ["--ramp", "0/s"], "--ramp 0/s: must be from one phone a day"),
            // Each of these trapped: a phone's start time past UInt64 ns, rate × duration past Int, a clock past Int64,
            // count × K past Int.
            (fleet + ["--ramp", "1e-11/s"], "--ramp 1e-11/s: must be from one phone a day"),
            (fleet + ["--rate", "1e17/s", "--duration", "1h"], "--rate 1e17/s: must be from one phone a day"),
            (fleet + ["--time-scale", "1e300"], "--time-scale must be a positive number up to 1e9"),
            (fleet + ["--shard", "10000000000000/10000000000000"], "N must be at most --count (5)"),
            (fleet + ["--jitter", "150%"], "--jitter 150%: must be 0% to 100%"),
            (fleet + ["--duration", "106751991167d"], "--duration 106751991167d: must be at most 100 years"),
            // Outputs are written when the run ends: refused now rather than lost then.
            (fleet + ["--report", "missing/r.json"], "the directory missing does not exist"),
            (fleet + ["--csv", "reports"], "--csv reports is a directory"),
            (fleet + ["--report", "r.json", "--html", "./r.json"], "--report and --html both write ./r.json"),
            (fleet + ["--store", "f.db", "--report", "f.db"], "--report and --store both write f.db"),
            (["report", "merge", "a.json", "--to", "missing/m.json"], "the directory missing does not exist"),
        ] {
            let r = try vphone(args, cwd: dir)
            #expect(r.code == 64, "\(args): \(r.stderr)")
            #expect(r.stderr.contains(says), "\(args): \(r.stderr)")
        }
        let last = try vphone(
            ["fleet", "--count", "4", "--mac-start", "FEFFFFFFFFFC", "--prov-url", "http://127.0.0.1:1/", "--quiet"],
            cwd: dir
        )
        #expect(last.code == 0, "the range may end on the last unicast MAC: \(last.stderr)")
        #expect(try files(in: dir) == ["reports"], "nothing written")
        try "not a database".write(toFile: dir + "/bad.db", atomically: true, encoding: .utf8)
        let r = try vphone(
            ["fleet", "--count", "5", "--prov-url", "http://127.0.0.1:1/", "--store", "bad.db"],
            cwd: dir
        )
        #expect(r.code == 65, "\(r.stderr)")
    }

    /// An output that fails when the run ends (a full disk) costs that output alone: the others are written whole,
    /// the reason is named, and the exit code says so.
    @Test func anOutputThatCannotBeWrittenAtTheEndFailsAloneWithItsReason() throws {
        let server = try fleetServer(count: 3)
        let dir = try makeTemporaryDirectory(prefix: "vphone-fleet")
        let r = try fleet(
            server,
            ["--report", "/dev/full", "--csv", "r.csv", "--html", "r.html", "--fail-if", "failed>0"],
            count: 3,
            cwd: dir
        )
        #expect(r.code == 65, "\(r.stderr)")
        #expect(r.stderr.contains("cannot write /dev/full: No space left on device"), "\(r.stderr)")
        #expect(r.stdout.contains("3 phones in"), "the summary is printed: \(r.stdout)")
        let csv = try String(contentsOfFile: dir + "/r.csv", encoding: .utf8)
        #expect(csv.split(separator: "\n").count == 4, "a header and three phones: \(csv)")
        #expect(try String(contentsOfFile: dir + "/r.html", encoding: .utf8).hasSuffix("</html>\n"))
        #expect(try files(in: dir) == ["r.csv", "r.html"], "no temporary left behind")

        // /dev/stdout redirected to a log is appended to, after the summary: not a file to replace.
        let shell = Process()
        shell.executableURL = URL(fileURLWithPath: "/bin/sh")
        shell.currentDirectoryURL = URL(fileURLWithPath: dir)
        shell.environment = ["VPHONE_PROFILE": TestProfiles.utg300Path, "PATH": "/usr/bin:/bin"]
        shell.arguments = [
            "-c",
            "echo earlier > runs.log && \"$0\" fleet --count 3 --mac-start \(Self.first.upper) --prov-url \(server.base) "
                + "--quiet --report /dev/stdout >> runs.log",
            vphoneBinary,
        ]
        try shell.run()
        shell.waitUntilExit()
        #expect(shell.terminationStatus == 0)
        let log = try String(contentsOfFile: dir + "/runs.log", encoding: .utf8)
        #expect(log.hasPrefix("earlier\n3 phones in"), "\(log)")
        #expect(log.contains("\"phones\" : 3") && log.hasSuffix("}\n"), "\(log)")
        try FileManager.default.removeItem(atPath: dir + "/runs.log")

        // A report written through a link replaces the file linked to; the link stays.
        try "old".write(toFile: dir + "/real.json", atomically: false, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: dir + "/link.json", withDestinationPath: dir + "/real.json")
        let linked = try fleet(server, ["--report", "link.json"], count: 3, cwd: dir)
        #expect(linked.code == 0, "\(linked.stderr)")
        #expect(try report(dir + "/real.json")["phones"] as? Int == 3)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: dir + "/link.json") == dir + "/real.json")

        // vphone report merge: the same rule for its outputs (they were not checked at all).
        let merged = try vphone(["report", "merge", "real.json", "--to", "/dev/full"], cwd: dir)
        #expect(merged.code == 65, "\(merged.stderr)")
        #expect(merged.stderr.contains("cannot write /dev/full: No space left on device"), "\(merged.stderr)")
    }
}

extension FleetTests {
    /// One running fleet per store and one running phone per image: a second would run the same phones' flash in
    /// turns. Reading and editing beside the running one still work.
    @Test func aStoreOrImageInUseByARunningVPhoneIsNotRunTwice() throws {
        let dir = try makeTemporaryDirectory(prefix: "vphone-fleet")
        let dead = "http://127.0.0.1:1/"
        let fleet = try startVPhone(
            ["fleet", "--count", "20", "--prov-url", dead, "--quiet", "--store", "s.db", "--duration", "1h"],
            cwd: dir
        )
        let phone = try startVPhone(
            ["boot", "--mac", "0080F0C571EB", "--flash", "p.flash", "--prov-url", dead, "--duration", "1h"],
            cwd: dir
        )
        defer {
            fleet.signal(SIGKILL)
            phone.signal(SIGKILL)
        }
        // Wait until each holds its run lock, read from /proc/locks: a second run started sooner could take the lock
        // first (and probing with flock from here could make the first one fail).
        func holdsRunLock(_ process: RunningVPhone) -> Bool {
            let pid = Substring(String(process.process.processIdentifier))
            let locks = (try? String(contentsOfFile: "/proc/locks", encoding: .utf8)) ?? ""
            return locks.split(separator: "\n").contains { line in
                let fields = line.split(separator: " ")
                return fields.contains("FLOCK") && fields.contains(pid)
            }
        }
        for _ in 0..<300 where !(holdsRunLock(fleet) && holdsRunLock(phone)) { usleep(50_000) }
        #expect(holdsRunLock(fleet) && holdsRunLock(phone), "\(fleet.process.isRunning) \(phone.process.isRunning)")
        let secondFleet = try vphone(
            ["fleet", "--count", "2", "--prov-url", dead, "--quiet", "--store", "s.db"],
            cwd: dir
        )
        #expect(secondFleet.code == 65, "\(secondFleet.stderr)")
        #expect(secondFleet.stderr.contains("s.db is in use by another running vphone (a fleet cannot share it)"))
        #expect(secondFleet.stderr.contains("give this fleet a --store of its own"))
        let secondPhone = try vphone(["boot", "--flash", "p.flash", "--prov-url", dead, "--once"], cwd: dir)
        #expect(secondPhone.code == 65, "\(secondPhone.stderr)")
        #expect(secondPhone.stderr.contains("p.flash is in use by another running vphone (a phone cannot share it)"))
        // Beside them: extract, config set, events, and a booted copy.
        #expect(
            try vphone(["flash", "extract", "s.db", "--mac", "0080F0000001", "--to", "x.flash"], cwd: dir).code == 0
        )
        #expect(try vphone(["config", "set", "NTP_ADDR", "ntp.test", "--flash", "p.flash"], cwd: dir).code == 0)
        #expect(try vphone(["events", "p.flash"], cwd: dir).code == 0)
        let copy = try vphone(["boot", "--flash", "p.flash", "--snapshot", "--prov-url", dead, "--once"], cwd: dir)
        #expect(copy.code == 11, "\(copy.stderr)")
        // The lock goes with the process: once the first is stopped, the next runs.
        fleet.signal(SIGTERM)
        #expect(fleet.wait().code == 0)
        let after = try vphone(["fleet", "--count", "2", "--prov-url", dead, "--quiet", "--store", "s.db"], cwd: dir)
        #expect(after.code == 0, "\(after.stderr)")
    }
}

extension FleetTests {
    /// The provisioned-phone count from the fleet's Prometheus endpoint, or nil while it does not answer.
    func provisionedCount(metricsPort: Int, transport: CurlTransport) async -> Int? {
        let request = FetchRequest(url: "http://127.0.0.1:\(metricsPort)/metrics", userAgent: "test")
        guard case .success(let r) = await transport.fetch(request) else { return nil }
        let line = String(decoding: r.body, as: UTF8.self).split(separator: "\n").first {
            $0.hasPrefix("vphone_fleet_phones_total{outcome=\"provisioned\"}")
        }
        return line.flatMap { $0.split(separator: " ").last }.flatMap { Int($0) }
    }

    @Test func sigtermWritesTheReportAndFlushesTheStore() async throws {
        let count = 50
        let server = try fleetServer(count: count)
        let dir = try makeTemporaryDirectory(prefix: "vphone-fleet")
        let port = NginxServer.freePort()
        let running = try startVPhone(
            [
                "fleet", "--count", "\(count)", "--mac-start", Self.first.upper, "--prov-url", server.base, "--quiet",
                "--duration", "1h", "--metrics-port", "\(port)", "--report", "r.json", "--csv", "r.csv",
                "--store", "s.db",
            ],
            cwd: dir
        )
        let transport = try CurlTransport()
        defer { transport.shutdown() }
        // Every phone has finished its boot-time provisioning; the fleet would now run for an hour.
        var provisioned = 0
        for _ in 0..<600 where provisioned < count {
            provisioned = await provisionedCount(metricsPort: port, transport: transport) ?? 0
            if provisioned < count { try await Task.sleep(nanoseconds: 50_000_000) }
        }
        #expect(provisioned == count)
        running.signal(SIGTERM)
        let r = running.wait()
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stderr.contains("SIGTERM"))
        let rep = try report(dir + "/r.json")
        #expect(rep["phones"] as? Int == count)
        #expect(rep["provisioned"] as? Int == count)
        #expect(try String(contentsOfFile: dir + "/r.csv", encoding: .utf8).split(separator: "\n").count == count + 1)
        // The store's last batch was written before the exit: every phone is there, with its configuration.
        let store = try FleetStore.open(at: dir + "/s.db", readOnly: true)
        defer { store.close() }
        #expect(Set(try store.macs()) == Set((0..<count).map { Self.first.advanced(by: UInt64($0)) }))
        let phone = Self.first.advanced(by: 7)
        #expect(try vphone(["flash", "extract", "s.db", "--mac", phone.upper, "--to", "p.flash"], cwd: dir).code == 0)
        #expect(try configShow(flash: dir + "/p.flash", cwd: dir)["PHONE_NUMBER_1"]! == ("1007", "standard"))
    }
}

extension FleetTests {
    @Test func aSlowServerHeldBackByTheInFlightLimitGetsANote() throws {
        // Each standard file takes about a second (nginx sends 400 bytes a second); one transfer at a time, and the
        // other phone's next file waits: the loop has nothing to do but wait on the server.
        let count = 3
        let slow = "location ~ ^/Config0080F010000 { limit_rate 400; }"
        let server = try fleetServer(count: count, extraConfig: slow)
        let dir = try makeTemporaryDirectory(prefix: "vphone-fleet")
        // One loop with `inFlight` places, and the report's share of the run spent waiting at the limit.
        func run(inFlight: Int) throws -> (result: Run, share: Double?) {
            let file = "in-flight-\(inFlight).json"
            let result = try fleet(
                server,
                ["--loops", "1", "--max-in-flight", String(inFlight), "--report", file],
                count: count,
                cwd: dir
            )
            return (result, try report(dir + "/" + file)["in_flight_limit_share"] as? Double)
        }
        let (held, heldShareRead) = try run(inFlight: 1)
        #expect(held.code == 0, "\(held.stderr)")
        #expect(held.stderr.contains("note: the loops spent"), "\(held.stderr)")
        #expect(held.stderr.contains("with 1 transfer in flight each and more waiting"), "\(held.stderr)")
        #expect(held.stdout.contains("3 provisioned"))
        // The report keeps the share, for a run without a terminal.
        let heldShare = try #require(heldShareRead)
        #expect(heldShare >= 0.25)
        // Room for every transfer: none waits, no note.
        let (free, freeShare) = try run(inFlight: 8)
        #expect(free.code == 0, "\(free.stderr)")
        #expect(!free.stderr.contains("note: the loops spent"), "\(free.stderr)")
        #expect(freeShare ?? 1 < 0.25)
    }

    @Test func oneBootingPhoneAtATimeFetchesDepthFirst() throws {
        let count = 20
        let server = try fleetServer(count: count)
        let dir = try makeTemporaryDirectory(prefix: "vphone-fleet")
        let r = try fleet(server, ["--report", "r.json", "--max-booting", "1"], count: count, cwd: dir)
        #expect(r.code == 0, "\(r.stderr)")
        #expect(try report(dir + "/r.json")["provisioned"] as? Int == count)
        // Each phone's four requests come together, one phone after another: no phone's initial file goes ahead of
        // the phone before it finishing.
        let agents = try server.requests(atLeast: 4 * count).map { line -> String in
            let parts = line.split(separator: "\"")
            return parts.count > 3 ? String(parts[3]) : ""
        }
        #expect(agents.count == 4 * count)
        let runs = stride(from: 0, to: agents.count, by: 4).map { Set(agents[$0..<min($0 + 4, agents.count)]) }
        #expect(runs.allSatisfy { $0.count == 1 })
        #expect(Set(runs.compactMap(\.first)).count == count)
    }
}
