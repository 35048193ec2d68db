// MARK: - Merging shards

extension FleetReport {
    /// One report for the whole fleet from the reports of its shards (`vphone report merge`).
    ///
    /// Exact, not averaged: histograms are added bucket by bucket, counts summed, and rates recomputed from the
    /// merged counts, so the result equals the report one process would have written for all the phones.
    /// Shards that started at different wall-clock times are placed on the earliest start: the duration is the
    /// span from the first start to the last end (the longest duration when all started together), the steady
    /// state the last phone's finish on that time line, and `completions_per_s` is shifted (to the nearest second)
    /// before being summed.
    ///
    /// ```swift
    /// let whole = try FleetReport.merge([shard1, shard2])   // shard "1/2" and "2/2"
    /// whole.shard                                          // nil: the whole fleet
    /// ```
    ///
    /// - Throws: `FleetReportError` when there is nothing to merge, when versions differ, when a shard appears
    ///   twice, when shards come from different splits (`1/4` with `2/3`), or when sharded and unsharded
    ///   reports are mixed.
    public static func merge(_ reports: [FleetReport]) throws -> FleetReport {
        guard let first = reports.first else {
            throw FleetReportError(.nothingToMerge, "no report to merge: give at least one report file")
        }
        for report in reports where report.version != first.version {
            throw FleetReportError(
                .incompatibleReports,
                "cannot merge report format versions \(first.version) and \(report.version): "
                    + "write every shard's report with the same vphone version"
            )
        }
        let shard = try mergedShard(reports.map(\.shard))
        let earliest = reports.map(\.startedAtMs).min() ?? first.startedAtMs

        var merged = FleetReport(
            version: first.version,
            shard: shard,
            startedAtMs: earliest,
            durationS: 0,
            phoneOutcomes: [:],
            requestsByFile: [:],
            httpStatus: [:],
            steadyStateS: nil,
            completionsPerS: [],
            phoneLatency: LatencyHistogram(),
            stageLatency: [:]
        )
        for report in reports {
            let offsetS = Double(report.startedAtMs - earliest) / 1000
            merged.durationS = max(merged.durationS, offsetS + report.durationS)
            merged.phoneOutcomes.merge(report.phoneOutcomes, uniquingKeysWith: +)
            for (file, outcomes) in report.requestsByFile {
                merged.requestsByFile[file, default: [:]].merge(outcomes, uniquingKeysWith: +)
            }
            merged.httpStatus.merge(report.httpStatus, uniquingKeysWith: +)
            merged.atInFlightLimitS += report.atInFlightLimitS
            merged.loopS += report.loopS
            if let steady = report.steadyStateS {
                merged.steadyStateS = max(merged.steadyStateS ?? 0, offsetS + steady)
            }
            let shift = Int(offsetS.rounded())
            if shift + report.completionsPerS.count > merged.completionsPerS.count {
                merged.completionsPerS.append(
                    contentsOf: repeatElement(
                        0,
                        count: shift + report.completionsPerS.count - merged.completionsPerS.count
                    )
                )
            }
            for (second, count) in report.completionsPerS.enumerated() {
                merged.completionsPerS[shift + second] += count
            }
            merged.phoneLatency.add(report.phoneLatency)
            for (file, stages) in report.stageLatency {
                var mergedStages = merged.stageLatency[file] ?? [:]
                for stage in Stage.allCases {
                    var histogram = mergedStages[stage] ?? LatencyHistogram()
                    if let other = stages[stage] {
                        histogram.add(other)
                    }
                    mergedStages[stage] = histogram
                }
                merged.stageLatency[file] = mergedStages
            }
        }
        return merged
    }

    /// The shard label of a merge: nil when every shard of the split is there (or none was sharded), else the
    /// indices covered (`"1,3/4"`).
    private static func mergedShard(_ labels: [String?]) throws -> String? {
        let sharded = labels.compactMap { $0 }
        guard !sharded.isEmpty else { return nil }
        guard sharded.count == labels.count else {
            throw FleetReportError(
                .incompatibleReports,
                "cannot merge sharded and unsharded reports (shards \(sharded.joined(separator: ", ")) with a "
                    + "report without --shard): the unsharded run already covers every MAC"
            )
        }
        var split: Int?
        var covered: Set<Int> = []
        for label in sharded {
            let parts = label.split(separator: "/", omittingEmptySubsequences: false)
            let indices = parts.first?.split(separator: ",", omittingEmptySubsequences: false).map { Int($0) }
            guard parts.count == 2, let count = Int(parts[1]), count > 0, let indices, !indices.contains(nil) else {
                throw FleetReportError(
                    .incompatibleReports,
                    "shard '\(label)' is not K/N (like 2/4): give reports written with --shard K/N"
                )
            }
            if let split, split != count {
                throw FleetReportError(
                    .incompatibleReports,
                    "cannot merge shards of a \(split)-way and a \(count)-way split: "
                        + "merge the reports of one run (the same --shard K/N with one N)"
                )
            }
            split = count
            for case let index? in indices {
                guard covered.insert(index).inserted else {
                    throw FleetReportError(
                        .incompatibleReports,
                        "shard \(index)/\(count) is in more than one report: each shard's report must be merged "
                            + "once (its phones would be counted twice)"
                    )
                }
            }
        }
        guard let split, covered.count < split else { return nil }
        return covered.sorted().map(String.init).joined(separator: ",") + "/\(split)"
    }
}
