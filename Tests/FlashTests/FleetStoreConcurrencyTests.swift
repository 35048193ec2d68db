import Foundation
import PhoneCore
import Testing

@testable import Flash

/// A fleet's phones write from many tasks at once: nothing is lost, and the writes go in few transactions.
@Suite("Fleet store concurrency: 1,000 phones at once")
struct FleetStoreConcurrencyTests {
    static let phones = 1_000
    static let cyclesPerPhone = 10

    @Test func aThousandPhonesApplyingConcurrentlyLoseNothingInFewTransactions() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("fleet.db")
        let store = try FleetStore.openOrCreate(at: path)  // the default 100 ms batches, in the background
        let clock = ContinuousClock()
        let started = clock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            // 50 tasks of 20 phones each, interleaving their phones' changes.
            for task in 0..<50 {
                group.addTask {
                    let indices = Array(stride(from: task, to: Self.phones, by: 50))
                    var flashes: [FleetPhoneFlash] = []
                    for index in indices { flashes.append(try store.phone(fleetIdentity(index))) }
                    for cycle in 1...Self.cyclesPerPhone {
                        for (flash, index) in zip(flashes, indices) {
                            try flash.apply(fleetCycle(index, cycle: cycle, parameterCount: 5, events: 2))
                            // Each phone sees its own latest change at once, batch or no batch (load reads the
                            // rows, after the running batch: at the first and the last cycle only).
                            if cycle == 1 || cycle == Self.cyclesPerPhone {
                                #expect(try flash.load().bootCount == cycle)
                            }
                        }
                        await Task.yield()
                    }
                    for flash in flashes { flash.close() }
                }
            }
            try await group.waitForAll()
        }
        try store.flush()
        let elapsed = clock.now - started
        let statistics = store.statistics
        let applies = Self.phones * Self.cyclesPerPhone
        print(
            "fleet store: \(applies) applies from \(Self.phones) phones in 50 tasks took \(elapsed); "
                + "\(statistics.batches) transactions, longest \(statistics.longestBatch)"
        )
        #expect(statistics.changesAccepted == applies)
        #expect(statistics.batches >= 1)
        #expect(
            statistics.batches * 10 < applies,
            "batching: \(statistics.batches) transactions for \(applies) applies"
        )
        #expect(statistics.failedBatches == 0)
        store.close()

        // Everything is on disk: a fresh process's view equals each phone's whole history.
        let reopened = try FleetStore.open(at: path)
        defer { reopened.close() }
        #expect(try reopened.count() == Self.phones)
        #expect(try rawInteger(path, "SELECT count(*) FROM events") == Int64(applies * 2))
        for index in 0..<Self.phones {
            let identity = fleetIdentity(index)
            var expected = FlashSnapshot(identity: identity)
            var events: [LogEntry] = []
            for cycle in 1...Self.cyclesPerPhone {
                let changes = fleetCycle(index, cycle: cycle, parameterCount: 5, events: 2)
                expected = expected.applying(changes)
                events += changes.events
            }
            let flash = try reopened.phone(identity)
            #expect(try flash.load() == expected)
            #expect(try flash.events() == events)
        }
    }

    @Test func manyAppliesOfOnePhoneBetweenBatchesAreOneWrite() throws {
        let directory = try TemporaryDirectory()
        let store = try FleetStore.openOrCreate(at: directory.file("fleet.db"), batchInterval: .seconds(3600))
        defer { store.close() }
        let flash = try store.phone(testIdentity)
        var expected = FlashSnapshot(identity: testIdentity)
        for cycle in 1...200 {
            let changes = fleetCycle(0, cycle: cycle, events: 1)
            try flash.apply(changes)
            expected = expected.applying(changes)
        }
        try store.flush()
        #expect(store.statistics.batches == 1)
        #expect(store.statistics.phonesWritten == 1)
        #expect(try flash.load() == expected)
        #expect(try flash.events().count == 200)
    }
}
