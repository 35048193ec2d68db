// MARK: - Counts a report can hold

extension FleetReport {
    /// Why a report's counts cannot be real: one is negative, or a total the report shows (phones, requests and
    /// so errors, responses, completions, a stage over all file kinds) does not fit in an `Int`.
    enum CountProblem: Equatable {
        case negative(field: String, value: Int)
        case overflow(field: String)
    }

    /// The first count that is negative or total that overflows, in a fixed order; nil when every figure the
    /// report derives can be computed (its summaries, JSON, HTML and Prometheus text never trap then).
    func countProblem() -> CountProblem? {
        // Summed without naming: a name is made only for the count at fault (a week of completions is 604,801).
        func total(_ field: String, _ counts: [Int], name: (Int) -> String) -> CountProblem? {
            var sum = 0
            for (index, count) in counts.enumerated() {
                guard count >= 0 else { return .negative(field: name(index), value: count) }
                let (next, overflow) = sum.addingReportingOverflow(count)
                guard !overflow else { return .overflow(field: field) }
                sum = next
            }
            return nil
        }
        let outcomes = phoneOutcomes.sorted { $0.key < $1.key }
        // Every error class, and all errors, are parts of the requests: when the requests fit, they fit.
        let requests = requestsByFile.keys.sorted().flatMap { file in
            (requestsByFile[file] ?? [:]).sorted { $0.key < $1.key }.map {
                (file: file, outcome: $0.key, count: $0.value)
            }
        }
        let statuses = httpStatus.sorted { $0.key < $1.key }
        if let problem = total("phone_outcomes", outcomes.map(\.value), name: { "phone_outcomes.\(outcomes[$0].key)" })
            ?? total(
                "requests_by_file",
                requests.map(\.count),
                name: { "requests_by_file.\(requests[$0].file).\(requests[$0].outcome)" }
            )
            ?? total("http_status", statuses.map(\.value), name: { "http_status.\(statuses[$0].key)" })
            ?? total("completions_per_s", completionsPerS, name: { "completions_per_s[\($0)]" })
        {
            return problem
        }
        // A stage over all file kinds adds the files' histograms (`latency(_:)`): its count must stay an `Int`.
        for stage in Stage.allCases {
            var sum: UInt64 = 0
            for file in stageLatency.keys.sorted() {
                let (next, overflow) = sum.addingReportingOverflow(stageLatency[file]?[stage]?.totalCount ?? 0)
                guard !overflow, next <= UInt64(Int.max) else {
                    return .overflow(field: "histograms.by_file.*.\(stage.rawValue)")
                }
                sum = next
            }
        }
        return nil
    }
}
