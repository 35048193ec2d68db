import Foundation

// MARK: - JSON

extension FleetReport: Codable {
    /// The report as JSON: pretty, keys sorted, deterministic (the same report always gives the same bytes).
    ///
    /// Besides the counts and rates, `latency_ms` holds `p50`, `p90`, `p99` and `max` of phone latency at its top
    /// (the headline), then `phone`, each stage over all files (`dns`, `connect`, `tls`, `first_byte`, `total`)
    /// and `by_file` → file kind → stage; `histograms` holds the raw histograms that make merging exact.
    public func json() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        // Encoding cannot fail: every number is finite (sanitised in `encode(to:)`) and every key a string.
        return (try? [UInt8](encoder.encode(self))) ?? Array("{}".utf8)
    }

    /// Reads a report written by `json()`.
    ///
    /// - Throws: `FleetReportError` (`.invalidReport`) naming what is missing or wrong, when the bytes are not
    ///   JSON, not a vphone fleet report, of another format version, or damaged.
    public init(json: some Sequence<UInt8>) throws {
        do {
            self = try JSONDecoder().decode(FleetReport.self, from: Data(json))
        } catch let error as FleetReportError {
            throw error
        } catch let error as DecodingError {
            throw FleetReportError(
                .invalidReport,
                "not a readable vphone fleet report: \(Self.describe(error)); "
                    + "give a file written by `vphone fleet --report`"
            )
        }
    }

    enum Key: String, CodingKey {
        case format, version, shard, phones, provisioned, failed, requests, errors, histograms
        case startedAt = "started_at"
        case durationS = "duration_s"
        case fellBack = "fell_back"
        case phoneOutcomes = "phone_outcomes"
        case phonesPerS = "phones_per_s"
        case provisionedPerS = "provisioned_per_s"
        case requestsPerS = "requests_per_s"
        case requestsByFile = "requests_by_file"
        case httpStatus = "http_status"
        case steadyStateS = "steady_state_s"
        case completionsPerS = "completions_per_s"
        case atInFlightLimitS = "at_in_flight_limit_s"
        case loopS = "loop_s"
        case inFlightLimitShare = "in_flight_limit_share"
        case latencyMs = "latency_ms"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(Self.formatName, forKey: .format)
        try container.encode(version, forKey: .version)
        try container.encode(shard, forKey: .shard)
        try container.encode(Timestamp.iso8601(milliseconds: startedAtMs), forKey: .startedAt)
        try container.encode(durationS.isFinite ? durationS : 0, forKey: .durationS)
        try container.encode(phones, forKey: .phones)
        try container.encode(provisioned, forKey: .provisioned)
        try container.encode(fellBack, forKey: .fellBack)
        try container.encode(failed, forKey: .failed)
        try container.encode(phoneOutcomes, forKey: .phoneOutcomes)
        try container.encode(Format.thousandths(phonesPerS), forKey: .phonesPerS)
        try container.encode(Format.thousandths(provisionedPerS), forKey: .provisionedPerS)
        try container.encode(requests, forKey: .requests)
        try container.encode(Format.thousandths(requestsPerS), forKey: .requestsPerS)
        try container.encode(requestsByFile, forKey: .requestsByFile)
        try container.encode(errors, forKey: .errors)
        try container.encode(
            Dictionary(uniqueKeysWithValues: httpStatus.map { (String($0.key), $0.value) }),
            forKey: .httpStatus
        )
        try container.encode(steadyStateS.flatMap { $0.isFinite ? $0 : nil }, forKey: .steadyStateS)
        try container.encode(completionsPerS, forKey: .completionsPerS)
        // Exact: `report merge` adds them up.
        try container.encode(atInFlightLimitS.isFinite ? atInFlightLimitS : 0, forKey: .atInFlightLimitS)
        try container.encode(loopS.isFinite ? loopS : 0, forKey: .loopS)
        try container.encode(inFlightLimitShare.map(Format.thousandths), forKey: .inFlightLimitShare)
        try container.encode(LatencyBlock(self), forKey: .latencyMs)
        try container.encode(HistogramBlock(self), forKey: .histograms)
    }

    /// Reads what `encode(to:)` wrote. Derived figures (counts, rates, errors, `latency_ms`) are recomputed from
    /// the stored ones, so an edited summary cannot contradict the histograms.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        let format = try container.decodeIfPresent(String.self, forKey: .format)
        guard format == Self.formatName else {
            throw FleetReportError(
                .invalidReport,
                "not a vphone fleet report (its \"format\" is \(format.map { "'\($0)'" } ?? "missing"), not "
                    + "'\(Self.formatName)'): give a file written by `vphone fleet --report`"
            )
        }
        let version = try container.decode(Int.self, forKey: .version)
        guard version == Self.formatVersion else {
            throw FleetReportError(
                .invalidReport,
                "report format version \(version); this vphone reads version \(Self.formatVersion): "
                    + "read it with the vphone that wrote it"
            )
        }
        let started = try container.decode(String.self, forKey: .startedAt)
        guard let startedAtMs = Timestamp.parse(started) else {
            throw FleetReportError(
                .invalidReport,
                "'started_at' is '\(started)'; expected a UTC time like 2025-01-06T08:00:00.000Z"
            )
        }
        var httpStatus: [Int: Int] = [:]
        for (code, count) in try container.decode([String: Int].self, forKey: .httpStatus) {
            guard let number = Int(code) else {
                throw FleetReportError(.invalidReport, "'http_status' has the key '\(code)'; expected status codes")
            }
            httpStatus[number] = count
        }
        let requestsByFile = try container.decode([String: [String: Int]].self, forKey: .requestsByFile)
        let histograms = try container.decode(HistogramBlock.self, forKey: .histograms)
        var stageLatency: [String: [Stage: LatencyHistogram]] = [:]
        for file in Set(requestsByFile.keys).union(histograms.byFile.keys) {
            var stages: [Stage: LatencyHistogram] = [:]
            for stage in Stage.allCases {
                stages[stage] =
                    try histograms.byFile[file]?[stage.rawValue]?
                    .latencyHistogram(path: "by_file.\(file).\(stage.rawValue)") ?? LatencyHistogram()
            }
            stageLatency[file] = stages
        }
        self.init(
            version: version,
            shard: try container.decodeIfPresent(String.self, forKey: .shard),
            startedAtMs: startedAtMs,
            durationS: try container.decode(Double.self, forKey: .durationS),
            phoneOutcomes: try container.decode([String: Int].self, forKey: .phoneOutcomes),
            requestsByFile: requestsByFile,
            httpStatus: httpStatus,
            steadyStateS: try container.decodeIfPresent(Double.self, forKey: .steadyStateS),
            completionsPerS: try container.decode([Int].self, forKey: .completionsPerS),
            phoneLatency: try histograms.phone.latencyHistogram(path: "phone"),
            stageLatency: stageLatency
        )
        // A negative or endless run makes every rate wrong; a week of seconds is the most `FleetStats` counts
        // completions over, and a longer array only costs memory (and more again when merged).
        guard durationS.isFinite, durationS >= 0 else {
            throw FleetReportError(
                .invalidReport,
                "'duration_s' is \(durationS); a run lasts 0 seconds or more: give the file vphone wrote"
            )
        }
        if let steadyStateS, !steadyStateS.isFinite || steadyStateS < 0 {
            throw FleetReportError(
                .invalidReport,
                "'steady_state_s' is \(steadyStateS); expected seconds since the start, 0 or more: give the file "
                    + "vphone wrote"
            )
        }
        guard completionsPerS.count <= Self.maxCompletionsPerS else {
            throw FleetReportError(
                .invalidReport,
                "'completions_per_s' has \(completionsPerS.count) entries; a report holds at most "
                    + "\(Self.maxCompletionsPerS), one per second of a week: give the file vphone wrote"
            )
        }
        // Reports written before these were kept have neither: not measured.
        atInFlightLimitS = try container.decodeIfPresent(Double.self, forKey: .atInFlightLimitS) ?? 0
        loopS = try container.decodeIfPresent(Double.self, forKey: .loopS) ?? 0
        guard atInFlightLimitS.isFinite, loopS.isFinite, atInFlightLimitS >= 0, loopS >= 0 else {
            throw FleetReportError(
                .invalidReport,
                "'at_in_flight_limit_s' and 'loop_s' must be seconds, 0 or more: give the file vphone wrote"
            )
        }
        // A negative count, or counts whose totals overflow, would make every figure derived from them wrong (or
        // trap): refused here, naming the count.
        if let problem = countProblem() {
            throw FleetReportError(.invalidReport, Self.describe(problem))
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ codingPath: [any CodingKey]) -> String {
            codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case let .keyNotFound(key, context):
            return "missing '\(path(context.codingPath + [key]))'"
        case let .valueNotFound(_, context):
            return "'\(path(context.codingPath))' is null"
        case let .typeMismatch(type, context):
            return "'\(path(context.codingPath))' is not a \(type)"
        case let .dataCorrupted(context):
            let at = context.codingPath.isEmpty ? "" : " at '\(path(context.codingPath))'"
            return "the JSON is damaged\(at) (\(context.debugDescription))"
        @unknown default:
            return "\(error)"
        }
    }
}

/// A coding key made at run time (stage and file names as JSON keys).
struct NamedKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ name: String) { stringValue = name }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// `latency_ms`: written for people and dashboards, ignored on reading (recomputed from the histograms).
private struct LatencyBlock: Encodable {
    var phone: LatencySummary
    var stages: [String: LatencySummary]
    var byFile: [String: [String: LatencySummary]]

    init(_ report: FleetReport) {
        phone = report.latencyMs
        stages = Dictionary(uniqueKeysWithValues: Stage.allCases.map { ($0.rawValue, report.latency($0)) })
        var byFile: [String: [String: LatencySummary]] = [:]
        for file in report.stageLatency.keys {
            byFile[file] = Dictionary(
                uniqueKeysWithValues: Stage.allCases.map { ($0.rawValue, report.latency($0, file: file)) }
            )
        }
        self.byFile = byFile
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: NamedKey.self)
        // The headline `latency_ms` {p50, p90, p99, max} of issue 5: phone provisioning latency.
        try container.encode(phone.p50, forKey: NamedKey("p50"))
        try container.encode(phone.p90, forKey: NamedKey("p90"))
        try container.encode(phone.p99, forKey: NamedKey("p99"))
        try container.encode(phone.max, forKey: NamedKey("max"))
        try container.encode(phone, forKey: NamedKey("phone"))
        for (stage, summary) in stages {
            try container.encode(summary, forKey: NamedKey(stage))
        }
        try container.encode(byFile, forKey: NamedKey("by_file"))
    }
}

/// `histograms`: the raw data, what merging and reading use.
private struct HistogramBlock: Codable {
    var phone: HistogramSnapshot
    /// File kind → stage → histogram; stages without a sample are left out.
    var byFile: [String: [String: HistogramSnapshot]]

    enum CodingKeys: String, CodingKey {
        case phone
        case byFile = "by_file"
    }

    init(_ report: FleetReport) {
        phone = HistogramSnapshot(report.phoneLatency)
        var byFile: [String: [String: HistogramSnapshot]] = [:]
        for (file, stages) in report.stageLatency {
            var snapshots: [String: HistogramSnapshot] = [:]
            for (stage, histogram) in stages where histogram.count > 0 {
                snapshots[stage.rawValue] = HistogramSnapshot(histogram)
            }
            byFile[file] = snapshots
        }
        self.byFile = byFile
    }
}
