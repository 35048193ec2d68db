// When the in-flight limit, not the server, set a fleet's pace: the note `vphone fleet` prints (the figures the report
// keeps are FleetReportTests' `inFlightWaits`).

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
}
