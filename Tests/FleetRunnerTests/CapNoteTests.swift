// When the in-flight limit, not the server, set a fleet's pace: the note `vphone fleet` prints, and the figures the
// report keeps.

import Foundation
import Testing

@testable import Fleet
@testable import FleetReport

@Suite("In-flight limit note")
struct CapNoteTests {
    /// A report of `durationS` whose loops waited `idle` seconds each at the limit.
    static func report(idle: [Double], durationS: Double) -> FleetReport {
        FleetStats(startedAt: Date(timeIntervalSince1970: 1_800_000_000)).report(durationS: durationS)
            .withInFlightWaits(idle)
    }

    @Test("a quarter or more of the loops' time idle at the limit with transfers waiting gets a note naming the share")
    func noteFromAQuarterOn() throws {
        // Two loops, 10 s: 3 + 2 s idle at the limit is a quarter of their 20 s.
        let quarter = Self.report(idle: [3, 2], durationS: 10)
        #expect(quarter.atInFlightLimitS == 5 && quarter.loopS == 20 && quarter.inFlightLimitShare == 0.25)
        let note = try #require(FleetRunner.capNote(share: quarter.inFlightLimitShare, maxInFlight: 64))
        #expect(note.contains("25% of the run"))
        #expect(note.contains("64 transfers in flight"))
        #expect(note.contains("with it raised"))
        let one = Self.report(idle: [3], durationS: 10).inFlightLimitShare
        #expect(FleetRunner.capNote(share: one, maxInFlight: 1)?.contains("1 transfer in") == true)
        let most = Self.report(idle: [8], durationS: 10).inFlightLimitShare
        #expect(FleetRunner.capNote(share: most, maxInFlight: 1)?.contains("80% of the run") == true)
    }

    @Test(
        "less than a quarter, no time, or no loop: no note",
        arguments: [([2.4, 2.5], 10.0), ([0.0], 10.0), ([0.01, 0.02], 2.7), ([5.0], 0.0), ([], 10.0)]
    )
    func noNote(_ idle: [Double], _ duration: Double) {
        let share = Self.report(idle: idle, durationS: duration).inFlightLimitShare
        #expect(FleetRunner.capNote(share: share, maxInFlight: 256) == nil)
    }

    @Test("the report keeps the waits: in its JSON exactly, added up by a merge, and as Prometheus metrics")
    func reportKeepsTheWaits() throws {
        let a = Self.report(idle: [3.25, 2], durationS: 10)
        let b = Self.report(idle: [0.5], durationS: 4)
        let json = String(decoding: a.json(), as: UTF8.self)
        #expect(json.contains("\"at_in_flight_limit_s\" : 5.25") && json.contains("\"loop_s\" : 20"))
        #expect(json.contains("\"in_flight_limit_share\" : 0.263"))
        let read = try FleetReport(json: a.json())
        #expect(read == a)
        let merged = try FleetReport.merge([a, b])
        #expect(merged.atInFlightLimitS == 5.75 && merged.loopS == 24)
        let metrics = a.prometheus()
        #expect(metrics.contains("vphone_fleet_in_flight_limit_wait_seconds_total 5.25\n"))
        #expect(metrics.contains("vphone_fleet_in_flight_limit_share 0.2625\n"))
        // Not measured (a report from before, or a run without loops): no share, no metric, no note.
        let none = FleetStats(startedAt: Date(timeIntervalSince1970: 1_800_000_000)).report(durationS: 10)
        #expect(none.inFlightLimitShare == nil && !none.prometheus().contains("in_flight_limit"))
        let older = json.replacingOccurrences(of: "\"at_in_flight_limit_s\" : 5.25,", with: "")
            .replacingOccurrences(of: "\"loop_s\" : 20,", with: "")
        #expect(older != json)
        #expect(try FleetReport(json: Array(older.utf8)).inFlightLimitShare == nil)
        let negative = json.replacingOccurrences(of: "\"loop_s\" : 20", with: "\"loop_s\" : -1")
        #expect(throws: FleetReportError.self) { try FleetReport(json: Array(negative.utf8)) }
    }
}
