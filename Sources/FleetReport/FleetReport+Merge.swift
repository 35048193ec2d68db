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
    /// - Parameter names: What to call each report in an error (its file), in the order of `reports`; a report
    ///   without a name is "report 1", "report 2", ...
    /// - Throws: `FleetReportError` when there is nothing to merge, when versions differ, when a shard appears
    ///   twice, when one unsharded run appears twice, when shards come from different splits (`1/4` with `2/3`),
    ///   when sharded and unsharded reports are mixed, when counts are negative or overflow when merged, or when
    ///   the reports started so far apart that their completions would span more than a week.
    public static func merge(_ reports: [FleetReport], names: [String] = []) throws -> FleetReport {
        func name(_ index: Int) -> String { index < names.count ? names[index] : "report \(index + 1)" }
        guard let first = reports.first else {
            throw FleetReportError(.nothingToMerge, "no report to merge: give at least one report file")
        }
        for (index, report) in reports.enumerated() where report.version != first.version {
            throw FleetReportError(
                .incompatibleReports,
                "cannot merge report format versions \(first.version) and \(report.version) (\(name(0)) and "
                    + "\(name(index))): write every shard's report with the same vphone version"
            )
        }
        for (index, report) in reports.enumerated() {
            if let problem = report.countProblem() {
                throw FleetReportError(.invalidReport, "\(name(index)): \(describe(problem))")
            }
        }
        let shard = try mergedShard(reports.map(\.shard), name: name)
        try refuseRepeatedRuns(reports, name: name)
        let earliest = reports.map(\.startedAtMs).min() ?? first.startedAtMs
        try refuseRunsTooFarApart(reports, earliest: earliest, name: name)

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
        for (index, report) in reports.enumerated() {
            /// The counts of the reports merged so far do not fit in a 64-bit count: no real fleet counts that far.
            func overflow(_ field: String) -> FleetReportError {
                FleetReportError(
                    .incompatibleReports,
                    "\(field) counts overflow when merged (\((0...index).map(name).joined(separator: ", "))): "
                        + "more than \(Int.max) cannot be real; merge the reports `vphone fleet --report` wrote, "
                        + "unedited"
                )
            }
            func add<Key: Hashable>(_ counts: [Key: Int], into total: inout [Key: Int], _ field: String) throws {
                for (key, count) in counts {
                    let (sum, overflowed) = total[key, default: 0].addingReportingOverflow(count)
                    guard !overflowed else { throw overflow("\(field).\(key)") }
                    total[key] = sum
                }
            }
            func add(_ histogram: LatencyHistogram, into total: inout LatencyHistogram, _ field: String) throws {
                guard total.canAdd(histogram) else { throw overflow(field) }
                total.add(histogram)
            }
            let offsetS = Double(report.startedAtMs - earliest) / 1000
            merged.durationS = max(merged.durationS, offsetS + report.durationS)
            try add(report.phoneOutcomes, into: &merged.phoneOutcomes, "phone_outcomes")
            for (file, outcomes) in report.requestsByFile {
                try add(outcomes, into: &merged.requestsByFile[file, default: [:]], "requests_by_file.\(file)")
            }
            try add(report.httpStatus, into: &merged.httpStatus, "http_status")
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
                let (sum, overflowed) = merged.completionsPerS[shift + second].addingReportingOverflow(count)
                guard !overflowed else { throw overflow("completions_per_s[\(shift + second)]") }
                merged.completionsPerS[shift + second] = sum
            }
            try add(report.phoneLatency, into: &merged.phoneLatency, "histograms.phone")
            for (file, stages) in report.stageLatency {
                var mergedStages = merged.stageLatency[file] ?? [:]
                for stage in Stage.allCases {
                    var histogram = mergedStages[stage] ?? LatencyHistogram()
                    if let other = stages[stage] {
                        try add(other, into: &histogram, "histograms.by_file.\(file).\(stage.rawValue)")
                    }
                    mergedStages[stage] = histogram
                }
                merged.stageLatency[file] = mergedStages
            }
            // Totals over keys (phones, requests, an error class, ...) must fit too: the merged report shows them.
            if case let .overflow(field) = merged.countProblem() { throw overflow(field) }
        }
        return merged
    }

    /// What is wrong with a report's counts, and the fix.
    static func describe(_ problem: CountProblem) -> String {
        switch problem {
        case let .negative(field, value):
            "'\(field)' is \(value); counts are 0 or more: give the file `vphone fleet --report` wrote, unedited"
        case let .overflow(field):
            "the '\(field)' counts add up to more than \(Int.max), which cannot be real: give the file "
                + "`vphone fleet --report` wrote, unedited"
        }
    }

    /// Refuses one unsharded run given twice (the same file, or a copy): its phones would be counted twice. Two
    /// reports are of one run when both are unsharded and they started in the same millisecond and ran exactly as
    /// long; distinct runs never agree on both (sharded reports are told apart by their shard labels instead).
    private static func refuseRepeatedRuns(_ reports: [FleetReport], name: (Int) -> String) throws {
        var seen: [String: Int] = [:]
        for (index, report) in reports.enumerated() where report.shard == nil {
            let run = "\(report.startedAtMs) \(report.durationS)"
            if let earlier = seen[run] {
                throw FleetReportError(
                    .incompatibleReports,
                    "\(name(earlier)) and \(name(index)) are reports of the same run (both unsharded, started at "
                        + "\(Timestamp.iso8601(milliseconds: report.startedAtMs)), \(report.durationS) s long): "
                        + "give each run's report once (its phones would be counted twice)"
                )
            }
            seen[run] = index
        }
    }

    /// Refuses reports whose completions, placed on the earliest start, would span more than a report holds
    /// (`maxCompletionsPerS`, a week): reports started years apart (an edited file, or shards of different
    /// runs) would otherwise allocate one `completions_per_s` entry per second between them and exhaust memory.
    /// The merged report stays one `FleetReport(json:)` reads back.
    private static func refuseRunsTooFarApart(
        _ reports: [FleetReport],
        earliest: Int64,
        name: (Int) -> String
    ) throws {
        // In Double: start times a report can hold are far apart only by millennia, never past 2^53 ms.
        func end(_ report: FleetReport) -> Double {
            ((Double(report.startedAtMs) - Double(earliest)) / 1000).rounded() + Double(report.completionsPerS.count)
        }
        guard let last = reports.indices.max(by: { end(reports[$0]) < end(reports[$1]) }),
            end(reports[last]) > Double(maxCompletionsPerS),
            let first = reports.firstIndex(where: { $0.startedAtMs == earliest })
        else { return }
        func started(_ index: Int) -> String { Timestamp.iso8601(milliseconds: reports[index].startedAtMs) }
        let days = Format.fixed((end(reports[last]) / 86_400).rounded(.up), 0)
        let week = "\(maxCompletionsPerS / 86_400) days"
        guard first != last else {
            throw FleetReportError(
                .invalidReport,
                "\(name(last)): 'completions_per_s' spans \(days) days, more than the \(week) a report holds: give "
                    + "the file `vphone fleet --report` wrote, unedited"
            )
        }
        throw FleetReportError(
            .incompatibleReports,
            "cannot merge \(name(first)) (started \(started(first))) with \(name(last)) (started \(started(last))): "
                + "their completions would span \(days) days, more than the \(week) a report holds; the shards of "
                + "one run start within \(week) of each other: merge the reports of one run"
        )
    }

    /// The shard label of a merge: nil when every shard of the split is there (or none was sharded), else the
    /// indices covered (`"1,3/4"`).
    private static func mergedShard(_ labels: [String?], name: (Int) -> String) throws -> String? {
        let sharded = labels.compactMap { $0 }
        guard !sharded.isEmpty else { return nil }
        guard sharded.count == labels.count else {
            let unsharded = labels.indices.filter { labels[$0] == nil }.map(name).joined(separator: ", ")
            throw FleetReportError(
                .incompatibleReports,
                "cannot merge sharded and unsharded reports (shards \(sharded.joined(separator: ", ")) with "
                    + "\(unsharded), written without --shard): the unsharded run already covers every MAC"
            )
        }
        var split: Int?
        var splitReport = 0  // the report that set `split`
        var covered: [Int: Int] = [:]  // shard index -> the report that covers it
        for (report, label) in labels.enumerated() {
            guard let label else { continue }
            let parts = label.split(separator: "/", omittingEmptySubsequences: false)
            let indices = parts.first?.split(separator: ",", omittingEmptySubsequences: false).map { Int($0) }
            guard parts.count == 2, let count = Int(parts[1]), count > 0, let indices, !indices.contains(nil) else {
                throw FleetReportError(
                    .incompatibleReports,
                    "\(name(report)): shard '\(label)' is not K/N (like 2/4): give reports written with --shard K/N"
                )
            }
            if let split, split != count {
                throw FleetReportError(
                    .incompatibleReports,
                    "cannot merge shards of a \(split)-way and a \(count)-way split (\(name(splitReport)) and "
                        + "\(name(report))): merge the reports of one run (the same --shard K/N with one N)"
                )
            }
            if split == nil { splitReport = report }
            split = count
            for case let index? in indices {
                if let earlier = covered[index] {
                    throw FleetReportError(
                        .incompatibleReports,
                        "shard \(index)/\(count) is in more than one report (\(name(earlier)) and \(name(report))): "
                            + "give each shard's report once (its phones would be counted twice)"
                    )
                }
                covered[index] = report
            }
        }
        guard let split, covered.count < split else { return nil }
        return covered.keys.sorted().map(String.init).joined(separator: ",") + "/\(split)"
    }
}
