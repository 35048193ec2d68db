// When the in-flight limit, not the server, set a fleet's pace: the note `vphone fleet` prints.

import Testing

@testable import Fleet

@Suite("In-flight limit note")
struct CapNoteTests {
    @Test("a quarter or more of the loops' time idle at the limit with transfers waiting gets a note naming the share")
    func noteFromAQuarterOn() throws {
        // Two loops, 10 s: 3 + 2 s idle at the limit is a quarter of their 20 s.
        let note = try #require(FleetRunner.capNote(idleSeconds: [3, 2], durationS: 10, maxInFlight: 64))
        #expect(note.contains("25% of the run"))
        #expect(note.contains("64 transfers in flight"))
        #expect(note.contains("with it raised"))
        #expect(FleetRunner.capNote(idleSeconds: [3], durationS: 10, maxInFlight: 1)?.contains("1 transfer in") == true)
        #expect(
            FleetRunner.capNote(idleSeconds: [8], durationS: 10, maxInFlight: 1)?.contains("80% of the run") == true
        )
    }

    @Test(
        "less than a quarter, no time, or no loop: no note",
        arguments: [([2.4, 2.5], 10.0), ([0.0], 10.0), ([0.01, 0.02], 2.7), ([5.0], 0.0), ([], 10.0)]
    )
    func noNote(_ idle: [Double], _ duration: Double) {
        #expect(FleetRunner.capNote(idleSeconds: idle, durationS: duration, maxInFlight: 256) == nil)
    }
}
