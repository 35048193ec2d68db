import Foundation
import Histogram

/// What a fleet run measured: outcomes, request counts, per-stage and per-file latency histograms, completions
/// over time. Written as JSON (`json()`), HTML (`html(title:)`) and Prometheus text (`prometheus()`); checked by
/// `Threshold`s; merged exactly across shards (`merge(_:)`: histograms added, not percentiles averaged).
///
/// ```swift
/// let report = stats.report(durationS: 12.5)
/// try Data(report.json()).write(to: URL(fileURLWithPath: "fleet.json"))
/// let whole = try FleetReport.merge(shardFiles.map { try FleetReport(json: Data(contentsOf: $0)) })
/// ```
public struct FleetReport: Sendable, Equatable {
    /// The JSON format version this vphone writes and reads.
    public static let formatVersion = 1
    /// The JSON `format` value, so other JSON is told apart.
    public static let formatName = "vphone-fleet-report"

    /// The format version (`formatVersion` for reports made by this vphone).
    public var version: Int
    /// The shard this report covers (`"2/4"`), the shards a partial merge covers (`"1,2/4"`), or nil for the whole
    /// fleet.
    public var shard: String?
    /// The run's wall-clock start, in milliseconds since the Unix epoch.
    public var startedAtMs: Int64
    /// The wall time of the run, in seconds.
    public var durationS: Double
    /// Phones that finished boot-time provisioning, by outcome ("provisioned", "fell_back", "failed").
    public var phoneOutcomes: [String: Int]
    /// Transfers by file kind, then by outcome ("ok" or a failure class).
    public var requestsByFile: [String: [String: Int]]
    /// Responses by status code (TFTP's is 0); transfers without a response are not counted here.
    public var httpStatus: [Int: Int]
    /// When the last phone finished (seconds since the start): the fleet's time to steady state after a storm.
    public var steadyStateS: Double?
    /// Phones that finished in each second since the start.
    public var completionsPerS: [Int]
    /// Seconds the transport's loops spent, summed over the loops, with every place `--max-in-flight` gives taken,
    /// transfers waiting and nothing to do but wait for the server (`inFlightLimitShare`).
    public var atInFlightLimitS: Double = 0
    /// The run's duration times its loops: the whole that `atInFlightLimitS` is a part of (0: not measured).
    public var loopS: Double = 0
    var phoneLatency: LatencyHistogram
    /// By file kind, every stage present.
    var stageLatency: [String: [Stage: LatencyHistogram]]

    init(
        version: Int = FleetReport.formatVersion,
        shard: String?,
        startedAtMs: Int64,
        durationS: Double,
        phoneOutcomes: [String: Int],
        requestsByFile: [String: [String: Int]],
        httpStatus: [Int: Int],
        steadyStateS: Double?,
        completionsPerS: [Int],
        phoneLatency: LatencyHistogram,
        stageLatency: [String: [Stage: LatencyHistogram]]
    ) {
        self.version = version
        self.shard = shard
        self.startedAtMs = startedAtMs
        self.durationS = durationS
        self.phoneOutcomes = phoneOutcomes
        self.requestsByFile = requestsByFile
        self.httpStatus = httpStatus
        self.steadyStateS = steadyStateS
        self.completionsPerS = completionsPerS
        self.phoneLatency = phoneLatency
        self.stageLatency = stageLatency
    }

    /// The most `completionsPerS` entries a report holds: one per second of a week (`FleetStats` counts a later
    /// completion in the last second). A longer array is refused on reading, and a merge that would need one.
    static let maxCompletionsPerS = FleetStats.State.completionSeconds + 1

    // MARK: - Counts

    public var startedAt: Date { Date(timeIntervalSince1970: Double(startedAtMs) / 1000) }

    /// The share of the run the loops waited at the in-flight limit (`atInFlightLimitS` over `loopS`): a quarter or
    /// more says `--max-in-flight`, not the server, may have set the pace. Nil when not measured.
    public var inFlightLimitShare: Double? { loopS > 0 ? min(1, atInFlightLimitS / loopS) : nil }

    /// This report with its in-flight figures (`atInFlightLimitS`, `loopS`) from the loops' waits at the limit
    /// (`CurlTransport.idleAtCapSeconds`, one per loop) over the report's duration.
    public func withInFlightWaits(_ idleSeconds: [Double]) -> FleetReport {
        var out = self
        out.atInFlightLimitS = idleSeconds.reduce(0, +)
        out.loopS = max(0, durationS) * Double(idleSeconds.count)
        return out
    }

    /// Phones that finished boot-time provisioning, whatever the outcome.
    public var phones: Int { phoneOutcomes.values.reduce(0, +) }
    public var provisioned: Int { phoneOutcomes["provisioned", default: 0] }
    public var fellBack: Int { phoneOutcomes["fell_back", default: 0] }
    public var failed: Int { phoneOutcomes["failed", default: 0] }
    /// Transfers, whatever the outcome.
    public var requests: Int { requestsByFile.values.reduce(0) { $0 + $1.values.reduce(0, +) } }
    /// Failed transfers by class (every outcome but "ok").
    public var errors: [String: Int] {
        var errors: [String: Int] = [:]
        for outcomes in requestsByFile.values {
            for (outcome, count) in outcomes where outcome != "ok" {
                errors[outcome, default: 0] += count
            }
        }
        return errors
    }
    /// Failed transfers, all classes.
    public var errorCount: Int { errors.values.reduce(0, +) }
    /// File kinds with at least one transfer, in the order a phone fetches them (initial, standard, product,
    /// master, certificate), any other after, by name.
    public var fileKinds: [String] {
        let order = FleetStats.knownFileKinds
        return requestsByFile.keys.sorted { left, right in
            let (leftIndex, rightIndex) = (
                order.firstIndex(of: left) ?? order.count, order.firstIndex(of: right) ?? order.count
            )
            return leftIndex != rightIndex ? leftIndex < rightIndex : left < right
        }
    }

    // MARK: - Rates

    /// Phones finished (any outcome) per second of the run.
    public var phonesPerS: Double { rate(phones) }
    /// Phones provisioned per second of the run.
    public var provisionedPerS: Double { rate(provisioned) }
    /// Transfers per second of the run.
    public var requestsPerS: Double { rate(requests) }

    private func rate(_ count: Int) -> Double {
        durationS > 0 ? Double(count) / durationS : 0
    }

    // MARK: - Latency

    /// The headline: phone provisioning latency, from each phone's intended start (the JSON `latency_ms` top level).
    public var latencyMs: LatencySummary { phoneLatency.summary }

    /// One stage's latency, over all file kinds or for one.
    public func latency(_ stage: Stage, file: String? = nil) -> LatencySummary {
        stageHistogram(stage, file: file).summary
    }

    /// The raw histogram of phone latency (µs), for analysis beyond the summaries.
    public var phoneHistogram: Histogram<UInt64> { phoneLatency.histogram }

    /// The raw histogram of one stage (µs), over all file kinds or for one.
    public func histogram(_ stage: Stage, file: String? = nil) -> Histogram<UInt64> {
        stageHistogram(stage, file: file).histogram
    }

    func stageHistogram(_ stage: Stage, file: String?) -> LatencyHistogram {
        if let file {
            return stageLatency[file]?[stage] ?? LatencyHistogram()
        }
        var overall = LatencyHistogram()
        for kind in stageLatency.keys.sorted() {
            if let histogram = stageLatency[kind]?[stage] {
                overall.add(histogram)
            }
        }
        return overall
    }
}
