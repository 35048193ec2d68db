import Foundation

/// The fleet's measurements as they happen: many loop threads and tasks record at once.
///
/// Recording takes one lock and allocates nothing, except the first time a file kind, outcome, status code or
/// second of completions appears, or when more phones finish than `expectedPhones` reserved rows for (the
/// histograms, 1 µs to 10 min at 3 significant digits, are made up front). Reading (`progress()`,
/// `report(durationS:)`, `csv()`) may be called at any time; the first record into each histogram after a
/// `report` copies it once (copy-on-write), so scrape Prometheus every few seconds, not every millisecond.
///
/// ```swift
/// let stats = FleetStats(startedAt: Date(), shard: "2/4", expectedPhones: 10_000)
/// stats.recordRequest(file: "standard", outcome: "ok", httpStatus: 200,
///                     dnsUs: 40, connectUs: 180, tlsUs: 0, firstByteUs: 950, totalUs: 1_020)
/// stats.recordPhone(mac: "0080F0000001", outcome: "provisioned", intendedStartS: 0, completedAtS: 0.004,
///                   latencyUs: 4_100, files: ["initial": "ok", "standard": "ok"], error: nil)
/// print(stats.progress().line)                      // phones 1/10000  ...
/// let report = stats.report(durationS: 12.5)        // JSON, HTML, Prometheus, thresholds
/// ```
public final class FleetStats: Sendable {
    private let state: Locked<State>
    private let startedAt: Date
    private let shard: String?
    private let expectedPhones: Int?

    /// - Parameters:
    ///   - startedAt: the wall-clock start of the run; `completedAtS` and `intendedStartS` count from it.
    ///   - shard: this process's part of a sharded fleet (`--shard 2/4`), carried into the report for merging.
    ///   - expectedPhones: the phones this process will run, for the progress line and to size the per-phone rows.
    public init(startedAt: Date, shard: String? = nil, expectedPhones: Int? = nil) {
        self.startedAt = startedAt
        self.shard = shard
        self.expectedPhones = expectedPhones
        var state = State()
        // The known kinds' histograms are made now, not on the first transfer of a storm.
        for file in Self.knownFileKinds {
            state.fileIndex[file] = state.files.count
            state.files.append(FileSlot(name: file))
        }
        state.rows.reserveCapacity(min(max(expectedPhones ?? 0, 0), 10_000_000))
        self.state = Locked(state)
    }

    // MARK: - Recording (the hot path)

    /// Records one finished transfer.
    ///
    /// - Parameters:
    ///   - file: the file kind: "initial", "standard", "product", "master" or "certificate".
    ///   - outcome: "ok" or a failure class ("dns", "connect", "tls", "http_status", "timeout", "too_large",
    ///     "protocol_refused", "redirect", "auth", "not_found", "transfer", "other"), or for a transfer whose
    ///     content the phone rejected, "invalid_file" or "decryption" (with the response's status).
    ///   - httpStatus: the response code, or nil when there was no response (TFTP reports 0).
    ///   - dnsUs, connectUs, tlsUs, firstByteUs, totalUs: libcurl's timings in µs, cumulative from the start of
    ///     the transfer, 0 for a phase not reached. Each stage's own duration is recorded: dns; connect − dns;
    ///     tls − connect (HTTPS only); first byte − max(connect, tls); total. A stage not reached is not recorded
    ///     (no zero dragging its percentiles down). Failed transfers are recorded too: a timeout is latency a
    ///     phone really waited.
    public func recordRequest(
        file: String,
        outcome: String,
        httpStatus: Int?,
        dnsUs: Int64,
        connectUs: Int64,
        tlsUs: Int64,
        firstByteUs: Int64,
        totalUs: Int64
    ) {
        let durations = StageDurations(
            dnsUs: dnsUs,
            connectUs: connectUs,
            tlsUs: tlsUs,
            firstByteUs: firstByteUs,
            totalUs: totalUs
        )
        state.withLock { state in
            state.recordRequest(file: file, outcome: outcome, httpStatus: httpStatus, durations: durations)
        }
    }

    /// Records one phone at the end of its boot-time provisioning.
    ///
    /// - Parameters:
    ///   - mac: the phone's MAC, as the CSV should show it.
    ///   - outcome: "provisioned", "fell_back" (booted on its saved configuration) or "failed".
    ///   - intendedStartS: when the arrival schedule meant the phone to start, in seconds since the run started.
    ///   - completedAtS: when it finished, in seconds since the run started (completions over time, steady state).
    ///   - latencyUs: from the *intended* start to completion, in µs: an open model, so a phone that started late
    ///     because the load generator fell behind still counts its wait (no coordinated omission).
    ///   - files: each file kind's outcome ("ok" or a failure class) for the CSV.
    ///   - error: what went wrong, for the CSV, or nil.
    public func recordPhone(
        mac: String,
        outcome: String,
        intendedStartS: Double,
        completedAtS: Double,
        latencyUs: Int64,
        files: [String: String],
        error: String?
    ) {
        state.withLock { state in
            state.recordPhone(
                mac: mac,
                outcome: outcome,
                intendedStartS: intendedStartS,
                completedAtS: completedAtS,
                latencyUs: latencyUs,
                files: files,
                error: error
            )
        }
    }

    // MARK: - Reading

    /// Live numbers for a progress line.
    ///
    /// - Parameter now: the current wall-clock time (injectable for tests).
    public func progress(now: Date = Date()) -> FleetProgress {
        let elapsedS = max(now.timeIntervalSince(startedAt), 0)
        return state.withLock { state in
            let outcomes = state.phoneOutcomes
            return FleetProgress(
                done: state.phoneLatency.count,
                total: expectedPhones,
                provisioned: outcomes["provisioned", default: 0],
                fellBack: outcomes["fell_back", default: 0],
                failed: outcomes["failed", default: 0],
                errors: state.errors,
                ratePerS: Self.rate(
                    done: state.phoneLatency.count,
                    total: expectedPhones,
                    elapsedS: elapsedS,
                    lastS: state.steadyStateS
                ),
                p99Ms: Format.milliseconds(state.phoneLatency.valueUs(atPercentile: 99)),
                elapsedS: elapsedS
            )
        }
    }

    /// Phones done a second: since the start while phones are still booting, and over the time the last one took
    /// once all have (afterwards, the store catching up or a `--duration` run's idle hours would make it fall).
    static func rate(done: Int, total: Int?, elapsedS: Double, lastS: Double?) -> Double {
        if let total, done >= total, let lastS, lastS > 0 { return Double(done) / lastS }
        return elapsedS > 0 ? Double(done) / elapsedS : 0
    }

    /// The report so far (final once the run has ended).
    ///
    /// - Parameter durationS: the wall time of the run, in seconds.
    public func report(durationS: Double) -> FleetReport {
        let startedAtMs = Int64((startedAt.timeIntervalSince1970 * 1000).rounded())
        return state.withLock { state in
            var latency: [String: [Stage: LatencyHistogram]] = [:]
            var requests: [String: [String: Int]] = [:]
            for slot in state.files where !slot.outcomes.isEmpty {
                var stages: [Stage: LatencyHistogram] = [:]
                for stage in Stage.allCases {
                    stages[stage] = slot.stages[stage.index]
                }
                latency[slot.name] = stages
                requests[slot.name] = slot.outcomes
            }
            return FleetReport(
                shard: shard,
                startedAtMs: startedAtMs,
                durationS: durationS,
                phoneOutcomes: state.phoneOutcomes,
                requestsByFile: requests,
                httpStatus: state.httpStatus,
                steadyStateS: state.steadyStateS,
                completionsPerS: state.completions,
                phoneLatency: state.phoneLatency,
                stageLatency: latency
            )
        }
    }

    /// Per-phone outcomes as CSV (RFC 4180, CRLF-free: one `\n` per line), sorted by MAC.
    ///
    /// Header: `mac,outcome,latency_ms,intended_start_s,completed_at_s,initial,standard,product,master,error`.
    public func csv() -> String {
        let (rows, strings) = state.withLock { state in (state.rows, state.strings) }
        return PhoneRow.csv(rows, strings: strings)
    }
}

/// Live numbers for a progress line (not `Progress`, which Foundation already names).
public struct FleetProgress: Sendable, Equatable {
    /// Phones that finished boot-time provisioning, whatever the outcome.
    public var done: Int
    /// Phones this process runs, when known.
    public var total: Int?
    public var provisioned: Int
    public var fellBack: Int
    public var failed: Int
    /// Failed transfers (every outcome but "ok").
    public var errors: Int
    /// Phones done per second: since the start, or over the time the last one took once all are done (`rate`).
    public var ratePerS: Double
    /// The 99th percentile of phone latency so far, in ms.
    public var p99Ms: Double
    public var elapsedS: Double

    /// One terminal line: `phones 812/1000  245/s  ok 809  fell back 2  failed 1  errors 3  p99 412 ms`.
    public var line: String {
        let done = total.map { "\(self.done)/\($0)" } ?? "\(self.done)"
        return "phones \(done)  \(Format.short(ratePerS))/s  ok \(provisioned)  fell back \(fellBack)  "
            + "failed \(failed)  errors \(errors)  p99 \(Format.short(p99Ms)) ms"
    }
}

// MARK: - State

extension FleetStats {
    /// The file kinds a phone fetches (spec: initial, then standard, product and master; the root certificate).
    static let knownFileKinds = ["initial", "standard", "product", "master", "certificate"]
    /// The file kinds the CSV has a column for, in column order.
    static let csvFileKinds = ["initial", "standard", "product", "master"]

    /// One file kind's histograms (indexed by `Stage.index`) and outcome counts.
    struct FileSlot {
        var name: String
        var stages = [LatencyHistogram](repeating: LatencyHistogram(), count: Stage.allCases.count)
        var outcomes: [String: Int] = [:]
    }

    struct State {
        var files: [FileSlot] = []
        var fileIndex: [String: Int] = [:]
        var phoneLatency = LatencyHistogram()
        var phoneOutcomes: [String: Int] = [:]
        var httpStatus: [Int: Int] = [:]
        var errors = 0
        var completions: [Int] = []
        var steadyStateS: Double?
        var rows: [PhoneRow] = []
        var strings: [String] = []
        var stringIndex: [String: Int32] = [:]

        /// A completion later than this (a week) is counted in the last second rather than growing the array
        /// without bound on a bad clock.
        static let completionSeconds = 7 * 86_400

        mutating func recordRequest(file: String, outcome: String, httpStatus: Int?, durations: StageDurations) {
            let slot: Int
            if let known = fileIndex[file] {
                slot = known
            } else {
                slot = files.count
                files.append(FileSlot(name: file))
                fileIndex[file] = slot
            }
            let values = durations.values
            if values.0 >= 0 { files[slot].stages[0].record(values.0) }
            if values.1 >= 0 { files[slot].stages[1].record(values.1) }
            if values.2 >= 0 { files[slot].stages[2].record(values.2) }
            if values.3 >= 0 { files[slot].stages[3].record(values.3) }
            files[slot].stages[4].record(values.4)
            files[slot].outcomes[outcome, default: 0] += 1
            if let httpStatus {
                self.httpStatus[httpStatus, default: 0] += 1
            }
            if outcome != "ok" {
                errors += 1
            }
        }

        mutating func recordPhone(
            mac: String,
            outcome: String,
            intendedStartS: Double,
            completedAtS: Double,
            latencyUs: Int64,
            files: [String: String],
            error: String?
        ) {
            phoneLatency.record(latencyUs)
            phoneOutcomes[outcome, default: 0] += 1
            let completed = completedAtS.isFinite ? max(completedAtS, 0) : 0
            let second = Int(min(completed, Double(Self.completionSeconds)))
            if second >= completions.count {
                completions.append(contentsOf: repeatElement(0, count: second + 1 - completions.count))
            }
            completions[second] += 1
            steadyStateS = max(steadyStateS ?? completed, completed)
            let kinds = FleetStats.csvFileKinds
            rows.append(
                PhoneRow(
                    mac: mac,
                    latencyUs: latencyUs,
                    intendedStartS: intendedStartS,
                    completedAtS: completedAtS,
                    outcome: intern(outcome),
                    initial: intern(files[kinds[0]]),
                    standard: intern(files[kinds[1]]),
                    product: intern(files[kinds[2]]),
                    master: intern(files[kinds[3]]),
                    error: intern(error)
                )
            )
        }

        /// Outcome and error texts repeat across phones: each is kept once and rows hold its index (-1: none).
        private mutating func intern(_ text: String?) -> Int32 {
            guard let text else { return -1 }
            if let index = stringIndex[text] { return index }
            let index = Int32(strings.count)
            strings.append(text)
            stringIndex[text] = index
            return index
        }
    }
}
