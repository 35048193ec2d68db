import ArgumentParser
import Flash
import Fleet
import FleetReport
import Foundation
import Logging
import PhoneCore
import PhoneRuntime
import Transport

struct FleetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet",
        abstract: "Run many virtual phones in one process against a provisioning server and measure it.",
        discussion: """
            Every phone is a full phone (the same code as vphone boot): its own flash state, key, timers, fallback, \
            User-Agent and connections. Latency is timed from each phone's intended start (an open model), so a slow \
            server cannot hide behind phones that start late. Without --duration the fleet exits when every phone has \
            finished its boot-time provisioning.

            SIGTERM or SIGINT stops the fleet early and cleanly, as vphone boot does: no new phone starts, timers \
            stop, phones still provisioning are shut down (they are left out of the report), the store is flushed, \
            and --report, --csv and --html are written for the phones that had finished. A second signal exits at \
            once, without outputs (status 128+signal).

            Exit codes: 0 (also after SIGTERM/SIGINT); 1 a --fail-if threshold was crossed; 64 bad command line; \
            65 unusable profile or store, a --store another running fleet holds, or an output (--report, --csv, \
            --html) that could not be written when the run ended (the others are still written).
            """
    )

    @Option(help: "How many phones.") var count: Int
    @Option(help: "MAC of the first phone (unicast); the others follow consecutively.") var macStart: MAC = MAC(
        "0080F0000001"
    )!
    @Option(help: "Initial-file URL every phone uses (as if set by hand).") var provURL: String?
    @Option(name: .customLong("dhcp-option66"), help: "DHCP option 66 value handed to every phone.") var option66:
        String?
    @OptionGroup var profileOption: ProfileOption

    @Flag(help: "All phones at once: the power-restore case (the default).") var storm = false
    @Option(help: "Start N phones a second until --count have started (e.g. 200/s).") var ramp: RateArgument?
    @Option(help: "A steady stream of N phones a second for the whole --duration (e.g. 50/s).") var rate: RateArgument?
    @Option(help: "Keep running for this much phone time (90s, 10m, 2h, 7d): cyclic resyncs, retries.")
    var duration: DurationArgument?
    @Option(help: "Spread each timer firing by up to this fraction of its delay (e.g. 10%).") var jitter:
        PercentArgument?
    @Option(help: "Run the phones' clocks K times faster than real time.") var timeScale: Double = 1

    @Option(
        help: "Give phones source addresses from this CIDR, in turn (e.g. 127.0.1.0/24); each must be this host's."
    ) var sourceIps: String?
    @Option(
        help: ArgumentHelp(
            "Loop threads, each running its phones and their libcurl transfers (default: the number of CPUs, at "
                + "most 16)."
        )
    ) var loops: Int?
    @Option(
        help: ArgumentHelp(
            "Transfers in flight per loop; the rest wait their turn. A server nearby needs fewer (64 does the same "
                + "work with less CPU on loopback); a distant one at least the rate wanted × a request's time, over "
                + "all loops. The report's in_flight_limit_share says how much of the run the loops waited at it."
        )
    ) var maxInFlight: Int = 256
    @Option(
        help: ArgumentHelp(
            "Phones in their boot-time provisioning at once; later ones wait for a place, their latency counting "
                + "from their intended start (default: 2 × --loops × --max-in-flight, and then waiting phones start "
                + "in batches of up to 32 as places free up).",
            valueName: "n"
        )
    )
    var maxBooting: Int?
    @Option(help: "PEM file of extra root certificates for HTTPS.") var caFile: String?
    @Flag(help: "Do not verify HTTPS certificates (labs only).") var insecure = false

    @Option(help: "The fleet store: one SQLite database for every phone's flash (default: memory only).")
    var store: String?
    @Option(help: "Write the JSON report here.") var report: String?
    @Option(help: "Write per-phone outcomes as CSV here.") var csv: String?
    @Option(help: "Write an HTML report with charts here.") var html: String?
    @Option(help: "Serve Prometheus metrics on this port (127.0.0.1) while the fleet runs.") var metricsPort: UInt16?
    @Option(help: "Fail (exit 1) when a threshold is crossed: 'p99>500ms', 'failed>0', 'phones_per_s<100'. Repeatable.")
    var failIf: [String] = []
    @Option(
        help: "Run shard K of N (e.g. 2/4): a disjoint slice of the MAC range; merge reports with vphone report merge."
    )
    var shard: ShardArgument?
    @Flag(
        help: """
            No progress line (for CI). The line shows phones done, their rate, outcomes, failed transfers and the \
            p99 so far, and with --store the phones the store has still to write; without a terminal it is printed \
            every 10 s.
            """
    ) var quiet = false
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard count > 0, count <= 1_000_000 else { throw ValidationError("--count must be 1...1000000, got \(count)") }
        // Every phone's MAC is unicast. The range is checked at its ends: a block of unicast or of multicast
        // addresses is 2^40 long, far more than --count, so a range that starts and ends unicast is unicast
        // throughout. It never reaches FFFFFFFFFFFF either (its first octet is odd), so it cannot wrap round.
        try macStart.requirePhoneMAC("--mac-start")
        let last = macStart.advanced(by: UInt64(count - 1))
        if last.isMulticast {
            let firstMulticast = last.value & 0xFF00_0000_0000
            throw ValidationError(
                "--mac-start \(macStart.upper) with --count \(count) runs into \(MAC(value: firstMulticast).upper), a "
                    + "multicast address (the first octet is odd): a phone's MAC is unicast; give --count "
                    + "\(firstMulticast - macStart.value) or less, or start at "
                    + "\(MAC(value: firstMulticast - UInt64(count)).upper) or lower"
            )
        }
        if let shard, let problem = shard.problem(count: count) {
            throw ValidationError("--shard \(shard.text): \(problem)")
        }
        if let ramp, let problem = ramp.problem { throw ValidationError("--ramp \(ramp.text): \(problem)") }
        if let rate, let problem = rate.problem { throw ValidationError("--rate \(rate.text): \(problem)") }
        if let duration, let problem = duration.problem {
            throw ValidationError("--duration \(duration.text): \(problem)")
        }
        if let jitter, let problem = jitter.problem {
            throw ValidationError("--jitter \(jitter.text): \(problem)")
        }
        if [storm, ramp != nil, rate != nil].filter({ $0 }).count > 1 {
            throw ValidationError("choose one arrival schedule: --storm, --ramp N/s or --rate N/s")
        }
        if rate != nil && duration == nil { throw ValidationError("--rate needs --duration (a stream lasts a while)") }
        try checkTimeScale(timeScale)
        if let loops, !(1...64).contains(loops) { throw ValidationError("--loops must be 1...64") }
        guard (1...100_000).contains(maxInFlight) else { throw ValidationError("--max-in-flight must be 1...100000") }
        if let maxBooting, !(1...1_000_000).contains(maxBooting) {
            throw ValidationError("--max-booting must be 1...1000000")
        }
        if provURL == nil && option66 == nil { throw ValidationError("give --prov-url URL (or --dhcp-option66)") }
        let macros = MacroContext(mac: macStart, model: "KX-UTG300", firmware: "0")
        if let provURL {
            do { _ = try ProvisioningURL.candidates(provURL, macros: macros) } catch {
                throw ValidationError("--prov-url: \(error.reason)")
            }
        }
        for t in failIf {
            do { _ = try Threshold.parse(t) } catch { throw ValidationError("--fail-if '\(t)': \(error)") }
        }
        if let sourceIps { try CIDR.requireLocal(try CIDR.addresses(sourceIps), block: sourceIps) }
        if let caFile { try checkCAFile(caFile) }
        // Outputs are written when the run ends: a path that cannot take them is refused now, not after the run.
        let outputs = [("--report", report), ("--csv", csv), ("--html", html)]
        for case let (option, path?) in outputs { try checkOutputPath(path, option: option) }
        try checkDistinctOutputs(outputs + [("--store", store)])
    }

    func run() async throws {
        let logger = logging.bootstrap(label: "vphone.fleet")
        let profile = try profileOption.load()
        let thresholds = try failIf.map { try Threshold.parse($0) }
        // A shard runs a disjoint slice of the phones: [k*count/n, (k+1)*count/n).
        var first = 0
        var mine = count
        if let shard {
            first = count * (shard.k - 1) / shard.n
            mine = count * shard.k / shard.n - first
        }
        var options = FleetOptions(
            count: mine,
            macStart: macStart.advanced(by: UInt64(first)),
            discovery: DiscoveryOptions(provisioningURL: provURL, option66: option66)
        )
        if let ramp { options.schedule = .ramp(perSecond: ramp.perSecond) }
        if let rate { options.schedule = .rate(perSecond: rate.perSecond) }
        options.durationMs = duration?.milliseconds
        options.timeScale = timeScale
        options.jitter = jitter?.fraction ?? 0
        options.sourceAddresses = try sourceIps.map { try CIDR.addresses($0) } ?? []
        let loops = self.loops ?? min(16, max(1, ProcessInfo.processInfo.activeProcessorCount))
        options.loops = loops
        options.maxInFlightPerLoop = maxInFlight
        options.maxBooting = maxBooting
        options.tls = .init(extraCAFile: caFile, insecure: insecure)
        options.shardLabel = shard.map { "\($0.k)/\($0.n)" }
        options.debugEvents = logging.logLevel.level == .debug
        if insecure { logger.warning("TLS VERIFICATION IS OFF (--insecure)") }

        // What the phones share (configuration base, saved-body references), also with the phones the store gives back.
        let prepared = PreparedProfile(profile, sharing: true)
        let flash: any FleetFlashProvider
        var runLock: RunLock?
        defer { runLock?.release() }
        if let store {
            do {
                flash = try FleetStoreProvider(path: store, sharing: prepared.shared)
                // One fleet per store: two would run the same phones' flash in turns.
                runLock = try RunLock(
                    path: store,
                    holder: "a fleet",
                    alternative: "give this fleet a --store of its own"
                )
            } catch {
                fail("\(error)")
                throw Exit.data
            }
        } else {
            flash = MemoryFleetFlash()
        }
        let transport: CurlTransport
        do {
            transport = try CurlTransport(loops: loops, maxInFlightPerLoop: maxInFlight)
        } catch {
            fail("cannot start libcurl: \(error)")
            throw ExitCode(70)
        }
        let stats = FleetStats(startedAt: Date(), shard: options.shardLabel, expectedPhones: options.count)
        let runner = FleetRunner(
            options: options,
            profile: prepared,
            transport: transport,
            flash: flash,
            stats: stats,
            logger: logger
        )
        let metrics = try startMetrics(stats: stats, transport: transport)
        let progress = quiet ? nil : startProgress(stats: stats, flash: flash)
        let work = Task { try await runner.run() }
        let stopper = StopSignals(secondExits: true) { work.cancel() }
        let duration: Double
        do {
            duration = try await work.value
        } catch {
            endProgress(progress)
            fail("fleet stopped: \(error)")
            throw Exit.data
        }
        endProgress(progress)
        if let signal = stopper.signalName {
            let done = stats.progress().done
            fail("stopped by \(signal): the outputs cover the \(done) phone(s) that had finished booting")
        }
        transport.shutdown()
        metrics?.stop()
        let result = stats.report(durationS: duration).withInFlightWaits(transport.idleAtCapSeconds)
        if let note = FleetRunner.capNote(share: result.inFlightLimitShare, maxInFlight: maxInFlight) { fail(note) }
        print(Self.summary(result))
        // Each output is tried even when another failed (a full disk, a directory removed during the run).
        let written = [
            write({ result.json() }, to: report),
            write({ Array(stats.csv().utf8) }, to: csv),
            write({ Array(result.html(title: "vphone fleet: \(options.count) phones").utf8) }, to: html),
        ]
        let violations = thresholds.compactMap { $0.violation(in: result) }
        for v in violations { fail("threshold crossed: \(v)") }
        if written.contains(false) { throw Exit.data }
        if !violations.isEmpty { throw ExitCode(1) }
    }

    static func summary(_ r: FleetReport) -> String {
        func ms(_ v: Double) -> String { String(format: "%.1f ms", v) }
        var lines = [
            String(
                format: "%d phones in %.2f s: %d provisioned, %d fell back, %d failed; %.0f phones/s, %.0f requests/s",
                r.phones,
                r.durationS,
                r.provisioned,
                r.fellBack,
                r.failed,
                r.phonesPerS,
                r.requestsPerS
            ),
            "phone latency (from intended start): p50 \(ms(r.latencyMs.p50))  p90 \(ms(r.latencyMs.p90))  "
                + "p99 \(ms(r.latencyMs.p99))  max \(ms(r.latencyMs.max))",
        ]
        if !r.errors.isEmpty {
            lines.append(
                "errors: " + r.errors.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            )
        }
        return lines.joined(separator: "\n")
    }

    /// Writes an output only when its flag was given (the HTML and CSV of a big fleet are not free to build), whole
    /// or not at all; false when it could not be written (the reason is on stderr).
    private func write(_ bytes: () -> [UInt8], to path: String?) -> Bool {
        guard let path else { return true }
        do { try writeFile(path, bytes(), private: false, replace: true) } catch { return false }
        return true
    }

    /// Stops the progress line and clears it, before anything else is written to stderr (a note, a signal's message).
    private func endProgress(_ progress: Task<Void, Never>?) {
        guard let progress else { return }
        progress.cancel()
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }

    private func startProgress(stats: FleetStats, flash: any FleetFlashProvider) -> Task<Void, Never> {
        let tty = isatty(2) != 0
        return Task.detached {
            while !Task.isCancelled {
                try? await Task.sleep(nanoseconds: tty ? 500_000_000 : 10_000_000_000)
                if Task.isCancelled { break }
                // The store writing behind the phones (and catching up after a storm, before the outputs).
                let backlog = flash.backlog
                let line = stats.progress().line + (backlog > 0 ? "  store: \(backlog) to write" : "")
                FileHandle.standardError.write(Data((tty ? "\r\u{1B}[K" + line : line + "\n").utf8))
            }
        }
    }

    private func startMetrics(stats: FleetStats, transport: CurlTransport) throws -> MetricsEndpoint? {
        guard let metricsPort else { return nil }
        let started = Date()
        do {
            // A thread of its own: a scrape is answered at once even while the phones keep the task pool busy.
            return try MetricsEndpoint(port: metricsPort) {
                let elapsed = Date().timeIntervalSince(started)
                return stats.report(durationS: elapsed).withInFlightWaits(transport.idleAtCapSeconds).prometheus()
            }
        } catch {
            fail("--metrics-port: \(error)")
            throw Exit.usage
        }
    }
}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Work with fleet reports.",
        subcommands: [Merge.self]
    )

    struct Merge: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Merge the JSON reports of several shards exactly (histograms merged, not averaged).",
            discussion: """
                Exit codes: 0 merged; 64 the same report file given twice, or an output (--to, --html) that is one \
                of the reports; 65 a report that cannot be read, reports of one run given twice, a shard in two \
                reports, shards of different splits, sharded with unsharded reports, reports started more than a \
                week apart, or counts that overflow when added.
                """
        )
        @Argument(help: "The shard reports (JSON).") var reports: [String]
        @Option(help: "Write the merged JSON report here (default: standard output).") var to: String?
        @Option(help: "Also write an HTML report here.") var html: String?

        func validate() throws {
            if reports.isEmpty { throw ValidationError("give at least one report") }
            let outputs = [("--to", to), ("--html", html)]
            for case let (option, path?) in outputs { try checkOutputPath(path, option: option) }
            try checkDistinctOutputs(outputs)
            try checkInputsAndOutputs(reports, what: "report", outputs: outputs)
        }

        func run() throws {
            var parsed: [FleetReport] = []
            for path in reports {
                guard let data = FileManager.default.contents(atPath: path) else {
                    fail("\(path): cannot read")
                    throw Exit.data
                }
                do {
                    parsed.append(try FleetReport(json: data))
                } catch {
                    fail("\(path): not a vphone fleet report: \(error)")
                    throw Exit.data
                }
            }
            let merged: FleetReport
            do { merged = try FleetReport.merge(parsed, names: reports) } catch {
                fail("\(error)")
                throw Exit.data
            }
            var ok = true
            if let to {
                do { try writeFile(to, merged.json(), private: false, replace: true) } catch { ok = false }
            } else {
                print(String(decoding: merged.json(), as: UTF8.self))
            }
            if let html {
                let page = Array(merged.html(title: "vphone fleet (merged)").utf8)
                do { try writeFile(html, page, private: false, replace: true) } catch { ok = false }
            }
            if !ok { throw Exit.data }
        }
    }
}

/// `200/s` or `200`; a rate that is not a positive number is refused by `validate()`, which can say why.
struct RateArgument: ExpressibleByArgument {
    var perSecond: Double
    var text: String
    init?(argument: String) {
        let t = argument.hasSuffix("/s") ? String(argument.dropLast(2)) : argument
        guard let v = Double(t) else { return nil }
        perSecond = v
        text = argument
    }
    /// A phone a day to a million a second: beyond either end the schedule's times leave what a clock can hold.
    var problem: String? {
        guard perSecond.isFinite, perSecond >= 1.0 / 86_400, perSecond <= 1_000_000 else {
            return "must be from one phone a day (0.0000116/s) to 1000000/s (e.g. 200/s)"
        }
        return nil
    }
    static var defaultValueDescription: String { "N/s, e.g. 200/s" }
}

/// `10%` or `0.1`; the range is checked by `validate()`, which can say why.
struct PercentArgument: ExpressibleByArgument {
    var fraction: Double
    var text: String
    init?(argument: String) {
        let v: Double?
        if argument.hasSuffix("%") { v = Double(argument.dropLast()).map { $0 / 100 } } else { v = Double(argument) }
        guard let v else { return nil }
        fraction = v
        text = argument
    }
    /// `--jitter` spreads a timer by up to its whole delay.
    var problem: String? { (0...1).contains(fraction) ? nil : "must be 0% to 100% of a timer's delay (e.g. 10%)" }
}

/// `K/N`; 1 <= K <= N is checked by `validate()`, which can say why.
struct ShardArgument: ExpressibleByArgument {
    var k: Int
    var n: Int
    var text: String { "\(k)/\(n)" }
    init?(argument: String) {
        let parts = argument.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let k = Int(parts[0]), let n = Int(parts[1]) else { return nil }
        self.k = k
        self.n = n
    }
    /// Why this shard of a `count`-phone fleet cannot be run, or nil.
    func problem(count: Int) -> String? {
        if n < 1 { return "N, the number of shards, must be at least 1 (e.g. 2/4: the second of four)" }
        if n > count { return "N must be at most --count (\(count)): more shards than phones leaves shards with none" }
        if !(1...n).contains(k) {
            return "K must be 1...\(n): there is no shard \(k) of \(n) (they are 1/\(n) to \(n)/\(n))"
        }
        return nil
    }
    static var defaultValueDescription: String { "K/N, e.g. 1/4" }
}

/// IPv4 CIDR blocks, expanded to their host addresses.
enum CIDR {
    static func addresses(_ text: String) throws -> [String] {
        let parts = text.split(separator: "/")
        let octets = parts.first?.split(separator: ".").compactMap { UInt32($0) } ?? []
        guard parts.count == 2, octets.count == 4, octets.allSatisfy({ $0 < 256 }), let bits = Int(parts[1]),
            (16...32).contains(bits)
        else {
            throw ValidationError("--source-ips \(text): expected an IPv4 CIDR block like 127.0.1.0/24 (/16 to /32)")
        }
        let base = octets.reduce(0) { $0 << 8 | $1 } & (bits == 32 ? ~0 : ~((1 << (32 - bits)) - 1))
        let size = UInt32(1) << (32 - bits)
        return (0..<size).map { i in
            let a = base + i
            return "\(a >> 24).\(a >> 16 & 255).\(a >> 8 & 255).\(a & 255)"
        }
    }

    /// Refuses a block with addresses this host cannot send from: every phone given one would fail to connect
    /// ("Failed binding local connection end"), counted as errors of the server. Each address is bound once, as
    /// libcurl binds it (a /16 is 65,536 binds, a few tens of milliseconds).
    static func requireLocal(_ addresses: [String], block: String) throws {
        var foreign: [String] = []
        var reason = ""
        for address in addresses {
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            guard inet_pton(AF_INET, address, &sin.sin_addr) == 1 else { continue }
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            guard fd >= 0 else { continue }
            let bound = withUnsafePointer(to: &sin) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            if bound != 0 {
                if foreign.isEmpty { reason = String(cString: strerror(errno)) }
                foreign.append(address)
            }
            close(fd)
        }
        guard !foreign.isEmpty else { return }
        let named = foreign.prefix(3).joined(separator: ", ") + (foreign.count > 3 ? ", ..." : "")
        throw ValidationError(
            "--source-ips \(block): \(foreign.count) of \(addresses.count) address(es) are not this host's (\(named): "
                + "\(reason)); give a block whose every address is on an interface (e.g. ip addr add "
                + "\(foreign[0])/32 dev lo), or a smaller block"
        )
    }
}
