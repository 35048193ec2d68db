import Foundation
import PhoneCore
import Testing

@testable import Flash

/// Measured figures, printed, never asserted (the machine decides them). Run with
/// `VPHONE_FLASH_BENCH=1 swift test -c release -Xswiftc -enable-testing --filter FlashBenchmark` for the
/// 10,000-image fleet figure (`VPHONE_FLASH_BENCH=N` for N images); without it the fleet is 100 images.
@Suite("Flash benchmark (prints figures)")
struct FlashBenchmarkTests {
    /// What one provisioning cycle persists: three saved files of 8 KB, the effective parameters, four file
    /// outcomes, the timers and a handful of events.
    static func cycle(_ index: Int, parameters: [String: Parameter]) -> FlashChanges {
        var changes = FlashChanges()
        changes.bootCount = 1
        changes.savedFiles = FileKind.deviceFiles.map {
            SavedFile(
                kind: $0,
                url: "http://prov/\($0).cfg",
                body: body(8192, seed: UInt8(truncatingIfNeeded: index)),
                savedAt: at(Int64(index))
            )
        }
        changes.parameters = ParameterTable(parameters)
        changes.fileStatus = FileKind.allCases.map {
            FileStatus(kind: $0, url: "http://prov/\($0).cfg", outcome: .downloaded, reason: "", at: at(Int64(index)))
        }
        changes.armTimers = [.cyclic: at(Int64(index) + 600_000)]
        changes.cancelTimers = [.retry]
        changes.events = (0..<6).map {
            LogEntry(
                at: at(Int64(index)),
                boot: 1,
                kind: "fetch",
                message: "Downloaded file \($0)",
                fields: ["url": "http://prov/x", "status": "200"]
            )
        }
        return changes
    }

    static let parameters = Dictionary(
        uniqueKeysWithValues: (0..<60).map {
            ("PARAM_\($0)", Parameter(name: "PARAM_\($0)", value: "value \($0)", source: .master, perm: "RW"))
        }
    )

    static func small(_ index: Int) -> FlashChanges {
        var changes = FlashChanges()
        changes.armTimers = [.retry: at(Int64(index))]
        changes.events = [LogEntry(at: at(Int64(index)), boot: 1, kind: "timer", message: "Retry armed")]
        return changes
    }

    static func report(_ label: String, _ samples: [Duration]) {
        let sorted = samples.sorted()
        func ms(_ d: Duration) -> String {
            let value = Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
            return String(format: "%.3f ms", value)
        }
        let total = samples.reduce(Duration.zero, +)
        print(
            "flash bench: \(label): n=\(samples.count) mean \(ms(total / samples.count)) p50 \(ms(sorted[sorted.count / 2])) "
                + "p99 \(ms(sorted[min(sorted.count - 1, sorted.count * 99 / 100)])) max \(ms(sorted[sorted.count - 1]))"
        )
    }

    /// Resident set size from /proc (Linux); nil elsewhere.
    static func residentBytes() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    @Test func singleTransactionApplyLatency() throws {
        let directory = try TemporaryDirectory()
        let store = try FlashStore.create(at: directory.file("phone.flash"), identity: testIdentity)
        let clock = ContinuousClock()
        var cycles: [Duration] = []
        var smalls: [Duration] = []
        for index in 0..<100 {
            let cycle = Self.cycle(index, parameters: Self.parameters)
            cycles.append(try clock.measure { try store.apply(cycle) })
            let small = Self.small(index)
            smalls.append(try clock.measure { try store.apply(small) })
        }
        Self.report("apply, provisioning cycle (3 x 8 KB files, 60 parameters, 6 events)", cycles)
        Self.report("apply, small (1 timer, 1 event)", smalls)
        var loads: [Duration] = []
        for _ in 0..<50 { loads.append(try clock.measure { _ = try store.load() }) }
        Self.report("load", loads)
    }

    @Test func fleetOfImagesEachAppliedOnce() throws {
        // VPHONE_FLASH_BENCH=1 for 10,000 images, or =N for N.
        let setting = ProcessInfo.processInfo.environment["VPHONE_FLASH_BENCH"]
        let count = setting.map { Int($0).flatMap { $0 > 1 ? $0 : nil } ?? 10_000 } ?? 100
        let directory = try TemporaryDirectory()
        let clock = ContinuousClock()
        let rssBefore = Self.residentBytes()
        var stores: [FlashStore] = []
        let created = try clock.measure {
            for index in 0..<count {
                let identity = Identity(
                    mac: testMAC.advanced(by: UInt64(index)),
                    model: "KX-UTG300",
                    firmware: "03.210",
                    createdAt: at(0)
                )
                stores.append(try FlashStore.create(at: directory.file("\(identity.mac).flash"), identity: identity))
            }
        }
        var samples: [Duration] = []
        let applied = try clock.measure {
            for (index, store) in stores.enumerated() {
                let changes = Self.cycle(index, parameters: Self.parameters)
                samples.append(try clock.measure { try store.apply(changes) })
            }
        }
        print("flash bench: fleet of \(count): create \(created) total, apply \(applied) total")
        Self.report("apply per image in a fleet of \(count)", samples)
        if let before = rssBefore, let after = Self.residentBytes() {
            print("flash bench: resident memory per open image after one apply: \((after - before) / count / 1024) KiB")
        }
        for store in stores { store.close() }
    }

    /// Open + export, and import, of an image at the event log's limit: the worst case a support engineer gets.
    @Test func openExportAndImportOfAFullImage() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("full.flash")
        let fresh = try FlashStore.create(at: directory.file("fresh.flash"), identity: testIdentity)
        fresh.close()
        let store = try FlashStore.create(at: path, identity: testIdentity)
        var changes = Self.cycle(1, parameters: Self.parameters)
        changes.events = (0..<FlashStore.maxEvents).map {
            LogEntry(
                at: at(Int64($0)),
                boot: 1 + $0 / 30,
                kind: "fetch",
                message: "Downloaded file \($0)",
                fields: ["url": "http://prov/x"]
            )
        }
        try store.apply(changes)
        store.close()
        let clock = ContinuousClock()
        var opens: [Duration] = []
        var exports: [Duration] = []
        var bytes: [UInt8] = []
        for _ in 0..<5 {
            var opened: FlashStore?
            opens.append(try clock.measure { opened = try FlashStore.open(at: path, readOnly: true) })
            exports.append(
                try clock.measure {
                    bytes = try opened?.exportJSON(includeSecrets: true, isSecret: { _ in false }) ?? []
                }
            )
        }
        var imports: [Duration] = []
        for index in 0..<3 {
            imports.append(
                try clock.measure { _ = try FlashStore.importJSON(bytes, to: directory.file("copy\(index).flash")) }
            )
        }
        func size(_ name: String) -> Int {
            ((try? FileManager.default.attributesOfItem(atPath: directory.file(name))[.size]) as? Int) ?? 0
        }
        print(
            "flash bench: fresh image \(size("fresh.flash")) bytes; full image (3 x 8 KB files, 60 parameters, "
                + "\(FlashStore.maxEvents) events) \(size("full.flash")) bytes, its export \(bytes.count) bytes"
        )
        Self.report("open (read-only)", opens)
        Self.report("export of the full image", exports)
        Self.report("import of the full image", imports)
    }
}
