// Issue 7: a phone whose server keeps failing must not run out of file descriptors. One phone (the real runtime,
// libcurl transport and SQLite flash) boots once against a real nginx, then goes through more than a thousand
// failed provisioning cycles, each started by its own retry timer on a virtual clock, with the failure changing
// from cycle to cycle: connection refused, 404, 500, a connection closed without an answer, a malformed file, and
// now and then a stalled transfer that runs into the total timeout.

import Flash
import Foundation
import Logging
import PhoneCore
import PhoneRuntime
import Testing
import Transport
import VPhoneTesting

@Suite(.serialized) struct ResourceLeakTests {
    /// How a cycle fails. The server's mode decides what nginx answers for every file; `refused` also points the
    /// initial file at a port nobody listens on.
    enum Failure: String, CaseIterable {
        case refused
        case notFound = "404"
        case serverError = "500"
        case malformed, stalled
    }

    static let cycles = 1_000
    /// One cycle in this many stalls (each stalled file costs the total timeout in real time).
    static let stallEvery = 125

    @Test func aThousandFailedCyclesLeakNoFileDescriptorAndKeepTheLastGoodConfiguration() async throws {
        let started = Date()
        // nginx answers by the mode file present in its root: checked per request, so the test flips modes
        // between cycles without reloading it. A stalled answer trickles at 1 byte a second.
        let server = try ProvServer(
            extraConfig: """
                if (-f $document_root/.mode-404) { return 404; }
                if (-f $document_root/.mode-500) { return 500; }
                if (-f $document_root/.mode-refused) { return 444; }
                if (-f $document_root/.mode-malformed) { rewrite ^ /malformed.xml break; }
                if (-f $document_root/.mode-stalled) { set $limit_rate 1; }
                """
        )
        try server.write("malformed.xml", Fixture.seedExample)
        let goodURL = server.base + "/KX-UTG300.cfg"
        let deadURL = "http://127.0.0.1:\(NginxServer.freePort())/KX-UTG300.cfg"

        let phone = try await LeakTestPhone.boot(initialURL: goodURL)
        defer { phone.remove() }
        let good = try #require(await phone.runtime.machine.lastReport)
        #expect(good.outcome == .provisioned)
        let goodFlash = try phone.flash()
        #expect(goodFlash.savedFiles.count == 4)

        var mode: Failure?
        var url = goodURL
        func failNext(_ failure: Failure) async throws {
            if mode != failure {
                if let mode { try server.remove(".mode-\(mode.rawValue)") }
                try server.write(".mode-\(failure.rawValue)", "")
                mode = failure
            }
            let wanted = failure == .refused ? deadURL : goodURL
            if url != wanted {
                #expect(await phone.runtime.localEdit(name: "USR_PROV_SVR_URL", value: wanted) == nil)
                url = wanted
            }
            try await phone.runOneFailedCycle()
        }

        // Warm-up: every kind of failure once, so that whatever libcurl, SQLite and the runtime open lazily (the
        // multi handle's sockets, the statement cache, the journal) is open before counting.
        for failure in Failure.allCases { try await failNext(failure) }
        let before = DescriptorCount(ports: [server.nginx.port, deadURL.port], directory: phone.directory)
        let cyclesBefore = phone.cycles

        let loop = Date()
        var byKind: [Failure: Int] = [:]
        let rotation: [Failure] = [.refused, .notFound, .serverError, .malformed]
        for i in 1...Self.cycles {
            let failure = i % Self.stallEvery == 0 ? .stalled : rotation[i % rotation.count]
            try await failNext(failure)
            byKind[failure, default: 0] += 1
        }
        let loopSeconds = Date().timeIntervalSince(loop)
        let after = DescriptorCount(ports: [server.nginx.port, deadURL.port], directory: phone.directory)
        let cycles = phone.cycles - cyclesBefore
        let outcomes = phone.transferOutcomes

        print(
            "ResourceLeakTests: \(cycles) failed cycles (\(byKind.map { "\($0.key.rawValue) \($0.value)" }.sorted()))"
                + " in \(String(format: "%.1f", loopSeconds)) s; open descriptors \(before.total) -> \(after.total)"
                + " (the phone's own: \(before.phone) -> \(after.phone)); whole test "
                + "\(String(format: "%.1f", Date().timeIntervalSince(started))) s; transfers: "
                + outcomes.map { "\($0.key) \($0.value)" }.sorted().joined(separator: ", ")
        )
        // Each kind of failure really happened at the transport: refused connections, HTTP errors, answers
        // that never came, timeouts, and malformed files that downloaded fine (200) and were refused by the reader.
        for outcome in ["connect", "http_status 404", "http_status 500", "timeout", "http 200"] {
            #expect(outcomes[outcome, default: 0] > 0, "no transfer ended in \(outcome): \(outcomes)")
        }
        #expect(cycles >= Self.cycles)
        // The phone's own descriptors (its flash files, its sockets to nginx or the dead port) return to the same
        // number; the process as a whole may differ by what other suites running in parallel hold at that moment,
        // but a leak of one descriptor per cycle of any one kind would add more than 200.
        #expect(after.phone <= before.phone + 2, "phone descriptors: \(before.phone) -> \(after.phone)")
        #expect(after.total <= before.total + 64, "process descriptors: \(before.total) -> \(after.total)")

        // spec §6: the failures never replaced the last good configuration.
        let flash = try phone.flash()
        #expect(flash.savedFiles == goodFlash.savedFiles)
        #expect(
            flash.parameters.filter { $0.key != "USR_PROV_SVR_URL" }.map(\.value)
                == goodFlash.parameters.filter { $0.key != "USR_PROV_SVR_URL" }.map(\.value)
        )
        #expect(flash.fileStatus.values.allSatisfy { $0.outcome != .downloaded })
        await phone.stop()
    }
}

/// A phone with real transport and flash, driven by a virtual clock: each `runOneFailedCycle` lets time jump to
/// the retry timer, which runs the next cycle.
private final class LeakTestPhone: @unchecked Sendable {
    let directory: String
    let runtime: PhoneRuntime
    let clock: VirtualClock
    private let transport: CurlTransport
    private let counter: Counter

    /// Cycles started (one download of the initial file each).
    var cycles: Int { counter.value }
    /// How every transfer ended: `http 200`, `connect`, `http_status 404`, `timeout`, ...
    var transferOutcomes: [String: Int] { counter.outcomes }

    private init(
        directory: String,
        runtime: PhoneRuntime,
        clock: VirtualClock,
        transport: CurlTransport,
        counter: Counter
    ) {
        self.directory = directory
        self.runtime = runtime
        self.clock = clock
        self.transport = transport
        self.counter = counter
    }

    /// A factory-fresh phone whose initial file URL is the local edit `USR_PROV_SVR_URL` (so that it can change
    /// between cycles), powered on; returns when the boot-time cycle has finished.
    static func boot(initialURL: String) async throws -> LeakTestPhone {
        // Flash on tmpfs when there is one: every cycle commits a few transactions with synchronous=FULL, and on
        // this machine's disk the fsyncs alone would take most of a minute. Descriptors are the same either way.
        let directory = try makeTemporaryDirectory(prefix: "vphone-leak", in: "/dev/shm")
        var profile = TestProfiles.utg300
        // A stalled transfer then costs 150 ms, not a minute.
        profile.connectTimeoutMs = 150
        profile.totalTimeoutMs = 150
        let clock = VirtualClock(start: SimulatedPhone.epoch)
        let store = try FlashStore.factoryFresh(
            at: directory + "/\(mac).flash",
            mac: mac,
            profile: profile,
            now: clock.now()
        )
        let machine = PhoneMachine(profile: PreparedProfile(profile), flash: try store.load())
        let transport = try CurlTransport()
        let counter = Counter()
        var logger = Logger(label: "vphone-leak-test")
        logger.logLevel = .critical
        let runtime = PhoneRuntime(
            machine: machine,
            store: store,
            transport: transport,
            clock: clock,
            logger: logger,
            onFetch: { record in
                let outcome: String
                switch record.result {
                case .success(let response): outcome = "http \(response.status)"
                case .failure(let failure):
                    outcome = failure.kind.rawValue + (failure.httpStatus.map { " \($0)" } ?? "")
                }
                counter.record(outcome, cycleStart: record.order.target == .file(.initial))
            }
        )
        let phone = LeakTestPhone(
            directory: directory,
            runtime: runtime,
            clock: clock,
            transport: transport,
            counter: counter
        )
        #expect(await runtime.localEdit(name: "USR_PROV_SVR_URL", value: initialURL) == nil)
        await runtime.powerOn()
        return phone
    }

    /// Lets the virtual clock run to just past the retry timer (or, the first time, asks for a resync): the
    /// cycle it starts must fail.
    func runOneFailedCycle() async throws {
        let before = cycles
        let retry = await runtime.machine.timers[.retry]
        if let retry {
            await runtime.run(until: retry.adding(milliseconds: 1))
        } else {
            await runtime.resync(reason: "leak test")
        }
        let report = try #require(await runtime.machine.lastReport)
        #expect(cycles > before, "no cycle ran")
        #expect(report.outcome != .provisioned, "the cycle did not fail: \(report.files)")
    }

    /// What flash holds now, read through a second connection as `vphone config show` would.
    func flash() throws -> FlashSnapshot {
        let reader = try FlashStore.open(at: directory + "/\(mac).flash", readOnly: true)
        defer { reader.close() }
        return try reader.load()
    }

    func stop() async {
        await runtime.shutdown()
        transport.shutdown()
    }

    func remove() { try? FileManager.default.removeItem(atPath: directory) }
}

/// Cycles and transfer outcomes, counted on libcurl's loop thread and read by the test.
private final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    private var byOutcome: [String: Int] = [:]
    var value: Int {
        lock.lock()
        defer { lock.unlock() }
        return count
    }
    var outcomes: [String: Int] {
        lock.lock()
        defer { lock.unlock() }
        return byOutcome
    }
    func record(_ outcome: String, cycleStart: Bool) {
        lock.lock()
        if cycleStart { count += 1 }
        byOutcome[outcome, default: 0] += 1
        lock.unlock()
    }
}

/// Open file descriptors of this process (`/proc/self/fd`), and how many of them are the phone's own: TCP sockets
/// from or to one of `ports`, and files in the phone's `directory` (its flash image and journal).
private struct DescriptorCount {
    var total = 0
    var phone = 0

    init(ports: [Int], directory: String) {
        let inodes = Self.socketInodes(ports: Set(ports))
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        for fd in fds {
            total += 1
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + fd)
            else { continue }
            if target.hasPrefix(directory + "/") {
                phone += 1
            } else if target.hasPrefix("socket:["), let inode = Int(target.dropFirst(8).dropLast()),
                inodes.contains(inode)
            {
                phone += 1
            }
        }
    }

    /// The inodes of TCP sockets whose local or remote port is one of `ports` (`/proc/net/tcp` and `tcp6`).
    private static func socketInodes(ports: Set<Int>) -> Set<Int> {
        var inodes = Set<Int>()
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            guard let text = try? String(contentsOfFile: table, encoding: .utf8) else { continue }
            for row in text.split(separator: "\n").dropFirst() {
                let fields = row.split(separator: " ")
                guard fields.count > 9, let inode = Int(fields[9]) else { continue }
                let local = fields[1].split(separator: ":").last.flatMap { Int($0, radix: 16) }
                let remote = fields[2].split(separator: ":").last.flatMap { Int($0, radix: 16) }
                if let local, ports.contains(local) { inodes.insert(inode) }
                if let remote, ports.contains(remote) { inodes.insert(inode) }
            }
        }
        return inodes
    }
}

/// A new directory under `parent` when it is a writable directory, else under the temporary directory.
private func makeTemporaryDirectory(prefix: String, in parent: String) throws -> String {
    guard FileManager.default.isWritableFile(atPath: parent) else { return try makeTemporaryDirectory(prefix: prefix) }
    let path = parent + "/\(prefix)-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

extension String {
    /// The port of `http://HOST:PORT/...`.
    fileprivate var port: Int {
        Int(split(separator: "/")[1].split(separator: ":").last ?? "") ?? 0
    }
}
