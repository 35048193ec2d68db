import Foundation
import PhoneCore
import Testing

@testable import Flash

/// A crash in the middle of a batch: the store and its journal as they were at that instant open as the state
/// after the previous batch, every phone whole (spec §6, for a whole fleet).
@Suite("Fleet store crash consistency: each phone is a prefix of its changes")
struct FleetStoreCrashTests {
    static let phones = 200

    @Test func aStoreCopiedMidBatchWithItsJournalOpensAsThePreviousBatch() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("fleet.db")
        let store = try FleetStore.openOrCreate(at: path, batchInterval: .seconds(3600))
        var flashes: [FleetPhoneFlash] = []
        for index in 0..<Self.phones { flashes.append(try store.phone(fleetIdentity(index))) }
        for (index, flash) in flashes.enumerated() { try flash.apply(fleetCycle(index, cycle: 1)) }
        try store.flush()
        let before = try flashes.map { try $0.load() }
        let eventsBefore = try flashes.map { try $0.events() }
        let original = try Data(contentsOf: URL(fileURLWithPath: path))

        // The next batch: every phone changes (bigger files, other parameters, more events), and new phones come.
        for (index, flash) in flashes.enumerated() {
            try flash.apply(fleetCycle(index, cycle: 2, fileSize: 6_000, parameterCount: 30, events: 12))
            if index % 3 == 0 {
                try flash.factoryReset(event: LogEntry(at: at(1), boot: 2, kind: "factory-reset", message: "Reset"))
            }
        }
        for index in Self.phones..<(Self.phones + 20) {
            try store.phone(fleetIdentity(index)).apply(fleetCycle(index, cycle: 1))
        }
        let after = try flashes.map { try $0.load() }

        // A tiny cache forces SQLite to write changed pages into the store before COMMIT; the hook copies the
        // store and its journal then: what a power cut at that instant leaves on disk.
        let crashed = directory.file("crashed.db")
        let copied = Locked<String?>(nil)
        try store.withDatabase { () throws(FlashError) in
            try store.connection.execute("PRAGMA cache_size = 2")
            store.duringBatch = {
                do {
                    try FileManager.default.copyItem(atPath: path, toPath: crashed)
                    try FileManager.default.copyItem(atPath: path + "-journal", toPath: crashed + "-journal")
                    copied.set("ok")
                } catch {
                    copied.set("\(error)")
                }
            }
        }
        try store.flush()
        #expect(copied.get() == "ok")
        #expect(try Data(contentsOf: URL(fileURLWithPath: crashed)) != original)  // it really was half-written

        // The live store went on to the new state, whole.
        #expect(try flashes.map { try $0.load() } == after)
        store.close()

        let recovered = try FleetStore.open(at: crashed)
        defer { recovered.close() }
        #expect(!FileManager.default.fileExists(atPath: crashed + "-journal"))  // rolled back as it opened
        #expect(try integrityCheck(crashed) == ["ok"])
        #expect(try recovered.macs() == (0..<Self.phones).map { fleetIdentity($0).mac })
        for index in 0..<Self.phones {
            let flash = try recovered.phone(fleetIdentity(index))
            #expect(try flash.load() == before[index])
            #expect(try flash.events() == eventsBefore[index])
        }

        // And the store after the batch committed holds every phone's newer state, whole.
        let committed = try FleetStore.open(at: path)
        defer { committed.close() }
        #expect(try committed.count() == Self.phones + 20)
        for index in 0..<Self.phones {
            #expect(try committed.phone(fleetIdentity(index)).load() == after[index])
        }
    }
}
