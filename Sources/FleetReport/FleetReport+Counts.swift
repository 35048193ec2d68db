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
        typealias Count = (field: String, count: Int)
        // Every error class, and all errors, are parts of the requests: when the requests fit, they fit.
        let requests: [Count] = requestsByFile.keys.sorted().flatMap { file in
            (requestsByFile[file] ?? [:]).sorted { $0.key < $1.key }.map {
                ("requests_by_file.\(file).\($0.key)", $0.value)
            }
        }
        let totals: [(field: String, counts: [Count])] = [
            ("phone_outcomes", phoneOutcomes.sorted { $0.key < $1.key }.map { ("phone_outcomes.\($0.key)", $0.value) }),
            ("requests_by_file", requests),
            ("http_status", httpStatus.sorted { $0.key < $1.key }.map { ("http_status.\($0.key)", $0.value) }),
            ("completions_per_s", completionsPerS.enumerated().map { ("completions_per_s[\($0.offset)]", $0.element) }),
        ]
        for (field, counts) in totals {
            var sum = 0
            for (name, count) in counts {
                guard count >= 0 else { return .negative(field: name, value: count) }
                let (next, overflow) = sum.addingReportingOverflow(count)
                guard !overflow else { return .overflow(field: field) }
                sum = next
            }
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
