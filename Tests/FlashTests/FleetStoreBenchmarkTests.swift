import Foundation
import PhoneCore
import Testing

@testable import Flash

/// Measured figures, printed, never asserted (the machine decides them). Run with
/// `VPHONE_FLEETSTORE_BENCH=1 swift test -c release -Xswiftc -enable-testing --filter FleetStoreBenchmark` for a
/// fleet of 10,000 phones (`=N` for N); without it the fleet is 1,000 phones.
@Suite("Fleet store benchmark (prints figures)")
struct FleetStoreBenchmarkTests {
    @Test func oneProvisioningCycleOfAWholeFleet() throws {
        let setting = ProcessInfo.processInfo.environment["VPHONE_FLEETSTORE_BENCH"]
        let count = setting.map { Int($0).flatMap { $0 > 1 ? $0 : nil } ?? 10_000 } ?? 1_000
        let directory = try TemporaryDirectory()
        let path = directory.file("fleet.db")
        let clock = ContinuousClock()
        // One batch per measured step: the background thread stays out of the way.
        let store = try FleetStore.openOrCreate(at: path, batchInterval: .seconds(3600))
        Self.trimMalloc()
        let rssBefore = FlashBenchmarkTests.residentBytes()

        var flashes: [FleetPhoneFlash] = []
        flashes.reserveCapacity(count)
        let opened = try clock.measure {
            for index in 0..<count { flashes.append(try store.phone(fleetIdentity(index))) }
        }
        let created = try clock.measure { try store.flush() }

        // What one boot-time provisioning cycle persists per phone: 3 saved files of ~500 B, 25 parameters, 4 file
        // outcomes, timers, 8 events.
        // The instant a batch's statements are done, before COMMIT: splits a flush into SQL and commit (fsync).
        let statementsDone = Locked<ContinuousClock.Instant?>(nil)
        try store.withDatabase { () throws(FlashError) in store.duringBatch = { statementsDone.set(.now) } }
        var figures: [String] = []
        for number in 0..<2 {
            let changes = (0..<count).map { fleetCycle($0, cycle: number + 1) }
            let applied = try clock.measure {
                for (flash, change) in zip(flashes, changes) { try flash.apply(change) }
            }
            let flushStarted = clock.now
            try store.flush()
            let flushed = clock.now - flushStarted
            let committing = statementsDone.get().map { clock.now - $0 } ?? .zero
            figures.append(
                "cycle \(number + 1): apply \(applied) (\(perPhone(applied, count))/phone), flush \(flushed) "
                    + "(\(perPhone(flushed, count))/phone; of which COMMIT \(committing)), apply+flush \(applied + flushed)"
            )
        }
        Self.trimMalloc()
        let rssAfter = FlashBenchmarkTests.residentBytes()
        let extracted = try clock.measure {
            try store.extract(mac: fleetIdentity(count / 2).mac, to: directory.file("x.flash"))
        }
        let statistics = store.statistics
        for flash in flashes { flash.close() }
        store.close()
        // A restarted load test: every phone resumes with its flash (phone() reads its rows).
        var resumed: FleetStore?
        let reopened = try clock.measure { resumed = try FleetStore.open(at: path) }
        var loads: [Duration] = []
        for index in 0..<count {
            loads.append(try clock.measure { _ = try resumed?.phone(fleetIdentity(index)).load() })
        }
        resumed?.close()
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0

        print("fleet store bench: \(count) phones: phone() for all \(opened), first batch (identity rows) \(created)")
        for line in figures { print("fleet store bench: \(line)") }
        FlashBenchmarkTests.report("fleet store phone() + load() of a stored phone, after reopening", loads)
        print(
            "fleet store bench: store \(size / 1024) KiB (\(size / count) B/phone), \(statistics.batches) batches, "
                + "longest \(statistics.longestBatch); extract one phone \(extracted); reopen \(reopened)"
        )
        if let rssBefore, let rssAfter {
            print(
                "fleet store bench: resident memory growth after the batches, freed memory trimmed: "
                    + "\((rssAfter - rssBefore) / count) B/phone (the FleetPhoneFlash objects, the store's MAC sets, "
                    + "what SQLite and malloc keep)"
            )
        }
    }

    /// Returns freed heap to the system (glibc's malloc_trim, looked up at run time: Glibc's module lacks it), so
    /// resident memory counts what is live.
    static func trimMalloc() {
        #if os(Linux)
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "malloc_trim") else { return }
        typealias Trim = @convention(c) (Int) -> Int32
        _ = unsafeBitCast(symbol, to: Trim.self)(0)
        #endif
    }

    private func perPhone(_ duration: Duration, _ count: Int) -> String {
        let microseconds = Double(duration.components.seconds) * 1e6 + Double(duration.components.attoseconds) / 1e12
        return String(format: "%.1f µs", microseconds / Double(count))
    }
}
