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
    }
}
