import FleetReport
import Foundation
import Testing

@Suite("FleetReport.merge: shards merge exactly")
struct MergeTests {
    /// Two shards (even and odd phones) and one collector fed every phone.
    private func fleet(phones: Int) -> (FleetStats, FleetStats, FleetStats) {
        let first = FleetStats(startedAt: runStart, shard: "1/2")
        let second = FleetStats(startedAt: runStart, shard: "2/2")
        let whole = FleetStats(startedAt: runStart)
        for index in 0..<phones {
            feedPhone(index, into: index.isMultiple(of: 2) ? first : second)
            feedPhone(index, into: whole)
        }
        return (first, second, whole)
    }

    @Test("merging two shard reports gives the report of the union, exactly")
    func mergeEqualsUnion() throws {
        let (first, second, whole) = fleet(phones: 2_000)
        let union = whole.report(durationS: 9.5)
        let merged = try FleetReport.merge([first.report(durationS: 9.5), second.report(durationS: 9.1)])
        #expect(merged == union)
        #expect(merged.shard == nil)
        #expect(merged.phones == 2_000)
        #expect(merged.requests == union.requests)
        #expect(merged.errors == union.errors)
        #expect(merged.httpStatus == union.httpStatus)
        #expect(merged.completionsPerS == union.completionsPerS)
        #expect(merged.steadyStateS == union.steadyStateS)
        #expect(merged.phonesPerS == union.phonesPerS)
        #expect(merged.latencyMs == union.latencyMs)
        for stage in Stage.allCases {
            #expect(merged.latency(stage) == union.latency(stage))
            for file in fileKinds {
                #expect(merged.latency(stage, file: file) == union.latency(stage, file: file))
            }
        }
        #expect(merged.json() == union.json())
    }

    @Test("merging the JSON files of the shards is exact too")
    func mergeThroughJSON() throws {
        let (first, second, whole) = fleet(phones: 500)
        let shards = try [first, second].map { try FleetReport(json: $0.report(durationS: 4).json()) }
        let merged = try FleetReport.merge(shards)
        #expect(merged == whole.report(durationS: 4))
    }

    @Test("shards that started apart are placed on the earliest start")
    func startOffsets() throws {
        let first = FleetStats(startedAt: runStart, shard: "0/2")
        let second = FleetStats(startedAt: runStart.addingTimeInterval(3), shard: "1/2")
        for (stats, completed) in [(first, 1.5), (second, 2.25)] {
            stats.recordPhone(
                mac: mac(1),
                outcome: "provisioned",
                intendedStartS: 0,
                completedAtS: completed,
                latencyUs: 1_000,
                files: [:],
                error: nil
            )
        }
        let merged = try FleetReport.merge([first.report(durationS: 10), second.report(durationS: 8)])
        #expect(merged.startedAtMs == Int64(runStart.timeIntervalSince1970 * 1000))
        #expect(merged.durationS == 11)
        #expect(merged.steadyStateS == 5.25)
        #expect(merged.completionsPerS == [0, 1, 0, 0, 0, 1])
        #expect(merged.phonesPerS == 2.0 / 11)
        #expect(merged.shard == nil)
    }

    @Test("a partial merge says which shards it covers")
    func partialMerge() throws {
        let reports = ["1/4", "3/4"].map { FleetStats(startedAt: runStart, shard: $0).report(durationS: 1) }
        #expect(try FleetReport.merge(reports).shard == "1,3/4")
        let more = try FleetReport.merge([
            try FleetReport.merge(reports), FleetStats(startedAt: runStart, shard: "2/4").report(durationS: 1),
        ])
        #expect(more.shard == "1,2,3/4")
    }

    @Test("incompatible reports are refused with a clear error")
    func refusals() throws {
        func report(_ shard: String?, version: Int = FleetReport.formatVersion) -> FleetReport {
            var report = FleetStats(startedAt: runStart, shard: shard).report(durationS: 1)
            report.version = version
            return report
        }
        let cases: [([FleetReport], FleetReportError.Kind, String)] = [
            ([], .nothingToMerge, "no report to merge"),
            ([report("1/2"), report("2/2", version: 2)], .incompatibleReports, "format versions 1 and 2"),
            ([report("1/2"), report("1/2")], .incompatibleReports, "shard 1/2 is in more than one report"),
            ([report("1/2"), report("2/3")], .incompatibleReports, "2-way and a 3-way split"),
            ([report("1/2"), report(nil)], .incompatibleReports, "sharded and unsharded"),
            ([report("one/2"), report("2/2")], .incompatibleReports, "shard 'one/2' is not K/N"),
        ]
        for (reports, kind, message) in cases {
            let error = try #require(throws: FleetReportError.self) { try FleetReport.merge(reports) }
            #expect(error.kind == kind)
            #expect(error.message.contains(message), "\(error.message)")
        }
        // Named, the refusal says which files.
        let error = try #require(throws: FleetReportError.self) {
            try FleetReport.merge(
                [report("1/2"), report("2/2"), report("2/2")],
                names: ["a.json", "b.json", "c.json"]
            )
        }
        #expect(error.message.contains("shard 2/2 is in more than one report (b.json and c.json)"), "\(error.message)")
        for (reports, says) in [
            ([report("1/2"), report(nil), report("2/2")], "(shards 1/2, 2/2 with b.json, written without --shard)"),
            ([report("1/2"), report("2/2"), report("3/3")], "a 2-way and a 3-way split (a.json and c.json)"),
        ] {
            let named = try #require(throws: FleetReportError.self) {
                try FleetReport.merge(reports, names: ["a.json", "b.json", "c.json"])
            }
            #expect(named.message.contains(says), "\(named.message)")
        }
    }

    @Test("one unsharded run given twice is refused; distinct runs merge")
    func theSameRunTwice() throws {
        let run = FleetStats(startedAt: runStart)
        feedPhone(1, into: run)
        let report = run.report(durationS: 2.5)
        let copy = try FleetReport(json: report.json())
        let error = try #require(throws: FleetReportError.self) {
            try FleetReport.merge([report, copy], names: ["rep1.json", "copy.json"])
        }
        #expect(error.kind == .incompatibleReports)
        #expect(
            error.message.hasPrefix("rep1.json and copy.json are reports of the same run (both unsharded"),
            "\(error.message)"
        )
        #expect(error.message.contains("give each run's report once"), "\(error.message)")
        // Another run (started later, or as long only by chance of the start) is not the same run.
        let later = FleetStats(startedAt: runStart.addingTimeInterval(0.001))
        feedPhone(2, into: later)
        #expect(try FleetReport.merge([report, later.report(durationS: 2.5)]).phones == 2)
        let sameStart = FleetStats(startedAt: runStart)
        feedPhone(3, into: sameStart)
        #expect(try FleetReport.merge([report, sameStart.report(durationS: 2.25)]).phones == 2)
    }

    /// Two reports whose counts overflow an `Int` when added: refused, naming the count and the reports, never a
    /// trap (`vphone report merge` once died of an arithmetic overflow here).
    @Test(
        "counts that overflow when merged are refused, naming the count and the reports",
        arguments: [
            "http_status.200", "requests_by_file.initial.ok", "phone_outcomes.provisioned", "completions_per_s[0]",
        ]
    )
    func overflowingCounts(field: String) throws {
        func set(_ report: inout FleetReport, _ count: Int) {
            switch field {
            case "http_status.200": report.httpStatus = [200: count]
            case "requests_by_file.initial.ok": report.requestsByFile = ["initial": ["ok": count]]
            case "phone_outcomes.provisioned": report.phoneOutcomes = ["provisioned": count]
            default: report.completionsPerS = [count]
            }
        }
        var first = FleetStats(startedAt: runStart, shard: "1/2").report(durationS: 1)
        var second = FleetStats(startedAt: runStart, shard: "2/2").report(durationS: 1)
        set(&first, 5_000_000_000_000_000_000)
        set(&second, 4_600_000_000_000_000_000)
        let error = try #require(throws: FleetReportError.self) {
            try FleetReport.merge([first, second], names: ["a.json", "b.json"])
        }
        #expect(error.kind == .incompatibleReports)
        #expect(error.message.hasPrefix("\(field) counts overflow when merged (a.json, b.json)"), "\(error.message)")
        // Each alone is a report that can be read and written.
        #expect(throws: Never.self) { try FleetReport(json: first.json()) }
    }

    @Test("totals that overflow when merged are refused too (each count fits, their sum does not)")
    func overflowingTotals() throws {
        var first = FleetStats(startedAt: runStart, shard: "1/2").report(durationS: 1)
        var second = FleetStats(startedAt: runStart, shard: "2/2").report(durationS: 1)
        first.phoneOutcomes = ["provisioned": 5_000_000_000_000_000_000]
        second.phoneOutcomes = ["failed": 5_000_000_000_000_000_000]
        let error = try #require(throws: FleetReportError.self) {
            try FleetReport.merge([first, second], names: ["a.json", "b.json"])
        }
        #expect(
            error.message.hasPrefix("phone_outcomes counts overflow when merged (a.json, b.json)"),
            "\(error.message)"
        )
    }

    @Test("histogram counts that overflow when merged are refused")
    func overflowingHistograms() throws {
        // One bucket at 1 ms holding 5e18 phones: a histogram the reader accepts, two of which overflow an Int.
        var bytes: [UInt8] = []
        for var value in [UInt64(1_000), 5_000_000_000_000_000_000] {
            while value >= 0x80 {
                bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
                value >>= 7
            }
            bytes.append(UInt8(value))
        }
        let histogram: [String: Any] = [
            "count": 5_000_000_000_000_000_000, "sum_us": 0, "min_us": 1_000, "max_us": 1_000, "lowest_us": 1,
            "digits": 3, "buckets": Data(bytes).base64EncodedString(),
        ]
        let reports = try ["1/2", "2/2"].map { shard in
            try editedReport(FleetStats(startedAt: runStart, shard: shard).report(durationS: 1)) {
                $0["histograms"] = ["phone": histogram, "by_file": [String: Any]()]
            }
        }
        #expect(reports[0].latencyMs.count == 5_000_000_000_000_000_000)
        let error = try #require(throws: FleetReportError.self) {
            try FleetReport.merge(reports, names: ["a.json", "b.json"])
        }
        #expect(
            error.message.hasPrefix("histograms.phone counts overflow when merged (a.json, b.json)"),
            "\(error.message)"
        )
    }

    @Test("a report with a negative count, or counts whose total overflows, is refused on reading")
    func impossibleCountsAreNotRead() throws {
        let report = FleetStats(startedAt: runStart).report(durationS: 1)
        let cases: [(String, (inout [String: Any]) -> Void)] = [
            ("'phone_outcomes.failed' is -1", { $0["phone_outcomes"] = ["failed": -1] }),
            ("'http_status.200' is -5", { $0["http_status"] = ["200": -5] }),
            ("'requests_by_file.initial.ok' is -2", { $0["requests_by_file"] = ["initial": ["ok": -2]] }),
            ("'completions_per_s[1]' is -1", { $0["completions_per_s"] = [3, -1] }),
            (
                "the 'phone_outcomes' counts add up to more than 9223372036854775807",
                { $0["phone_outcomes"] = ["provisioned": Int.max, "failed": 1] }
            ),
            (
                "the 'requests_by_file' counts add up to more than",
                { $0["requests_by_file"] = ["initial": ["timeout": Int.max], "master": ["timeout": Int.max]] }
            ),
            (
                "histogram phone is damaged: a count of 9223372036854775808",
                { json in
                    var histograms = json["histograms"] as? [String: Any] ?? [:]
                    var phone = histograms["phone"] as? [String: Any] ?? [:]
                    phone["count"] = UInt64(Int.max) + 1
                    histograms["phone"] = phone
                    json["histograms"] = histograms
                }
            ),
        ]
        for (message, edit) in cases {
            let error = try #require(throws: FleetReportError.self) { try editedReport(report, edit) }
            #expect(error.kind == .invalidReport)
            #expect(error.message.contains(message), "\(error.message)")
        }
    }

    /// Reports started far apart (an edited `started_at`, shards of runs on different days) once made `merge`
    /// allocate one `completions_per_s` entry per second between them: years apart, gigabytes. More than a week
    /// (what one report holds) is refused, naming the files and their starts; within it, they merge.
    @Test("reports whose completions would span more than a week are refused, naming the files and their starts")
    func startsTooFarApart() throws {
        func shard(_ label: String, startedAfter seconds: TimeInterval) -> FleetReport {
            let stats = FleetStats(startedAt: runStart.addingTimeInterval(seconds), shard: label)
            stats.recordPhone(
                mac: mac(1),
                outcome: "provisioned",
                intendedStartS: 0,
                completedAtS: 2,
                latencyUs: 1_000,
                files: [:],
                error: nil
            )
            return stats.report(durationS: 3)
        }
        let error = try #require(throws: FleetReportError.self) {
            try FleetReport.merge(
                [shard("1/2", startedAfter: 8 * 86_400), shard("2/2", startedAfter: 0)],
                names: ["late.json", "early.json"]
            )
        }
        #expect(error.kind == .incompatibleReports)
        #expect(
            error.message.hasPrefix(
                "cannot merge early.json (started 2025-01-06T08:00:00.250Z) with late.json (started "
                    + "2025-01-14T08:00:00.250Z): their completions would span 9 days, more than the 7 days a "
                    + "report holds; the shards of one run start within 7 days of each other"
            ),
            "\(error.message)"
        )
        // Six days apart is one (long) run: merged, and the merged report reads back.
        let merged = try FleetReport.merge([shard("1/2", startedAfter: 6 * 86_400), shard("2/2", startedAfter: 0)])
        #expect(merged.completionsPerS.count == 6 * 86_400 + 3)
        #expect(merged.phones == 2)
        #expect(try FleetReport(json: merged.json()) == merged)
    }

    @Test("a report with a negative or endless duration, or a completions_per_s longer than a week, is not read")
    func impossibleSpansAreNotRead() throws {
        let report = FleetStats(startedAt: runStart).report(durationS: 1)
        let cases: [(String, (inout [String: Any]) -> Void)] = [
            ("'duration_s' is -2.5; a run lasts 0 seconds or more", { $0["duration_s"] = -2.5 }),
            ("'steady_state_s' is -1.0; expected seconds since the start", { $0["steady_state_s"] = -1 }),
            (
                "'completions_per_s' has 604802 entries; a report holds at most 604801, one per second of a week",
                { $0["completions_per_s"] = [Int](repeating: 0, count: 604_802) }
            ),
        ]
        for (message, edit) in cases {
            let error = try #require(throws: FleetReportError.self) { try editedReport(report, edit) }
            #expect(error.kind == .invalidReport)
            #expect(error.message.contains(message), "\(error.message)")
        }
        // A number too large for a Double is no duration either (JSON has no infinity; 1e999 overflows).
        let text = String(decoding: report.json(), as: UTF8.self)
        let endless = text.replacingOccurrences(of: "\"duration_s\" : 1", with: "\"duration_s\" : 1e999")
        #expect(endless != text)
        #expect(throws: FleetReportError.self) { try FleetReport(json: Array(endless.utf8)) }
        // A week of seconds exactly is what FleetStats can write: read.
        #expect(throws: Never.self) {
            try editedReport(report) { $0["completions_per_s"] = [Int](repeating: 0, count: 604_801) }
        }
    }

    /// `report` written as JSON, edited, and read back.
    private func editedReport(_ report: FleetReport, _ edit: (inout [String: Any]) -> Void) throws -> FleetReport {
        var json = try #require(try JSONSerialization.jsonObject(with: Data(report.json())) as? [String: Any])
        edit(&json)
        return try FleetReport(json: JSONSerialization.data(withJSONObject: json))
    }
}
