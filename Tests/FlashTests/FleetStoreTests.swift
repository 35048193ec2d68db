import Foundation
import Testing

@testable import Flash
@testable import PhoneCore

// MARK: - Support

/// The identity of the `index`-th phone of a test fleet.
func fleetIdentity(_ index: Int) -> Identity {
    Identity(
        mac: testMAC.advanced(by: UInt64(index)),
        model: "KX-UTG300",
        firmware: "03.210",
        createdAt: at(Int64(index))
    )
}

/// What the `index`-th phone persists in one provisioning cycle: different for every phone and cycle, touching
/// saved files, parameters, file outcomes, timers and the log.
func fleetCycle(
    _ index: Int,
    cycle: Int,
    files: Int = 3,
    fileSize: Int = 500,
    parameterCount: Int = 25,
    events: Int = 8
)
    -> FlashChanges
{
    let time = Int64(cycle) * 1_000_000 + Int64(index)
    var changes = FlashChanges()
    changes.bootCount = cycle
    changes.savedFiles = FileKind.deviceFiles.prefix(files).map {
        SavedFile(
            kind: $0,
            url: "http://prov.example/\(index)/\($0).cfg",
            body: body(fileSize, seed: UInt8(truncatingIfNeeded: index &+ cycle)),
            savedAt: at(time)
        )
    }
    changes.parameters = ParameterTable(
        Dictionary(
            uniqueKeysWithValues: (0..<parameterCount).map {
                (
                    "PARAM_\($0)",
                    Parameter(name: "PARAM_\($0)", value: "p\(index)c\(cycle)v\($0)", source: .master, perm: "RW")
                )
            }
        )
    )
    changes.fileStatus = FileKind.allCases.map {
        FileStatus(kind: $0, url: "http://prov.example/\($0).cfg", outcome: .downloaded, reason: "", at: at(time))
    }
    changes.armTimers = [.cyclic: at(time + 600_000)]
    changes.cancelTimers = [.retry]
    changes.events = (0..<events).map {
        LogEntry(
            at: at(time + Int64($0)),
            boot: cycle,
            kind: "fetch",
            message: "phone \(index) cycle \(cycle) event \($0)",
            fields: ["url": "http://prov.example/x", "status": "200"]
        )
    }
    return changes
}

/// SQLite's integrity check of any database file, "ok" when whole.
func integrityCheck(_ path: String) throws -> [String] {
    let connection = try SQLiteConnection(path: path, mode: .readOnly)
    defer { connection.close() }
    var problems: [String] = []
    try connection.query("PRAGMA integrity_check", table: "test") { (row) throws(FlashError) in
        problems.append(try row.text(0))
    }
    return problems
}

func fileMode(_ path: String) throws -> Int {
    (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? -1
}

// MARK: - Tests

@Suite("Fleet store: every phone's flash in one file, written in batches")
struct FleetStoreTests {
    let directory: TemporaryDirectory
    let path: String

    init() throws {
        directory = try TemporaryDirectory()
        path = directory.file("fleet.db")
    }

    @Test func aNewStoreIsAFleetStoreWithMode0600AndARollbackJournal() throws {
        let store = try FleetStore.openOrCreate(at: path)
        defer { store.close() }
        #expect(try fileMode(path) == 0o600)
        #expect(try rawInteger(path, "PRAGMA application_id") == Int64(FleetStore.applicationID))
        #expect(try rawInteger(path, "PRAGMA user_version") == Int64(FleetStore.schemaVersion))
        var mode = ""
        try store.withDatabase { () throws(FlashError) in
            try store.connection.query("PRAGMA journal_mode", table: "test") { (row) throws(FlashError) in
                mode = try row.text(0)
            }
        }
        #expect(mode == "delete")
        #expect(try store.macs().isEmpty)
        #expect(try store.count() == 0)
    }

    @Test func aNewPhoneIsFactoryFreshAndWrittenByTheNextBatch() throws {
        let store = try FleetStore.openOrCreate(at: path, batchInterval: .seconds(3600))
        defer { store.close() }
        let flash = try store.phone(testIdentity)
        #expect(try flash.load() == FlashSnapshot(identity: testIdentity))
        #expect(try flash.events() == [])
        #expect(try store.macs() == [testMAC])
        #expect(try store.count() == 1)
        #expect(try rawInteger(path, "SELECT count(*) FROM identity") == 0)  // not yet written

        try store.flush()
        #expect(try rawInteger(path, "SELECT count(*) FROM identity") == 1)
        #expect(try rawInteger(path, "SELECT boot_count FROM state WHERE mac = '0080F0C571EB'") == 0)
        #expect(try flash.load() == FlashSnapshot(identity: testIdentity))
        #expect(try store.macs() == [testMAC])
    }

    @Test func loadAndEventsSeePendingChangesAndFlushWritesThem() throws {
        let store = try FleetStore.openOrCreate(at: path, batchInterval: .seconds(3600))
        let flash = try store.phone(testIdentity)
        let changes = everyPartChanges(boot: 1)
        try flash.apply(changes)
        #expect(try flash.load() == snapshotAfter(changes))
        #expect(try flash.events() == changes.events)
        #expect(try rawInteger(path, "SELECT count(*) FROM parameters") == 0)

        try store.flush()
        #expect(try rawInteger(path, "SELECT count(*) FROM parameters") == Int64(changes.parameters?.count ?? 0))
        #expect(try flash.load() == snapshotAfter(changes))
        #expect(try flash.events() == changes.events)

        // A second change on top of the stored one, seen before and after its batch.
        var second = everyPartChanges(boot: 2)
        second.parameters = ["ONLY": Parameter(name: "ONLY", value: "v", source: .standard)]
        second.removeLocalEdits = ["TIME_ZONE"]
        second.cancelTimers = [.cyclic]
        second.fileKey = .clear
        second.removeRootCertificates = [3]
        let expected = snapshotAfter(changes).applying(second)
        try flash.apply(second)
        #expect(try flash.load() == expected)
        #expect(try flash.events() == changes.events + second.events)
        #expect(try flash.events(boot: 2) == second.events)
        #expect(try flash.events(limit: 3) == Array((changes.events + second.events).suffix(3)))
        try store.flush()
        #expect(try flash.load() == expected)
        #expect(try flash.events(boot: 1, limit: 2) == Array(changes.events.suffix(2)))
        flash.close()
        store.close()

        let reopened = try FleetStore.openOrCreate(at: path)
        defer { reopened.close() }
        let again = try reopened.phone(testIdentity)
        #expect(try again.load() == expected)
        #expect(try again.events() == changes.events + second.events)
    }

    @Test func reopeningResumesEveryPhonesFlashAndKeepsTheFirstIdentity() throws {
        let store = try FleetStore.openOrCreate(at: path, batchInterval: .seconds(3600))
        var expected: [MAC: FlashSnapshot] = [:]
        for index in 0..<50 {
            let flash = try store.phone(fleetIdentity(index))
            let changes = fleetCycle(index, cycle: 1, events: index % 5)
            try flash.apply(changes)
            expected[fleetIdentity(index).mac] = FlashSnapshot(identity: fleetIdentity(index)).applying(changes)
            flash.close()
        }
        store.close()  // writes what is pending

        let reopened = try FleetStore.openOrCreate(at: path)
        defer { reopened.close() }
        #expect(try reopened.macs() == (0..<50).map { fleetIdentity($0).mac })
        for index in 0..<50 {
            // The identity stored first stays: a phone's identity never changes (spec §9).
            var asked = fleetIdentity(index)
            asked.firmware = "99.999"
            let flash = try reopened.phone(asked)
            #expect(try flash.load() == expected[asked.mac])
            #expect(try flash.events().count == index % 5)
        }
        let newcomer = try reopened.phone(fleetIdentity(50))
        #expect(try newcomer.load() == FlashSnapshot(identity: fleetIdentity(50)))
        #expect(try reopened.count() == 51)
    }

    @Test func phonesReadBackShareWithTheFleetAndReadExactlyAsWritten() throws {
        let store = try FleetStore.openOrCreate(at: path, batchInterval: .seconds(3600))
        var expected: [MAC: FlashSnapshot] = [:]
        for index in 0..<3 {
            let flash = try store.phone(fleetIdentity(index))
            // Product and master the same for every phone (as in a fleet), the standard file its own.
            var changes = fleetCycle(index, cycle: 1, files: 3, fileSize: 2_000, parameterCount: 60)
            for i in changes.savedFiles.indices where changes.savedFiles[i].kind != .standard {
                changes.savedFiles[i].savedBody = SavedBody(body(2_000, seed: 7))
            }
            // And a configuration mostly the fleet's: 57 values in common, 3 of the phone's own.
            var parameters: [String: Parameter] = [:]
            for k in 0..<60 {
                let value = k < 3 ? "phone \(index) value \(k)" : "fleet value \(k)"
                parameters["PARAM_\(k)"] = Parameter(name: "PARAM_\(k)", value: value, source: .master, perm: "RW")
            }
            changes.parameters = ParameterTable(parameters)
            try flash.apply(changes)
            expected[fleetIdentity(index).mac] = FlashSnapshot(identity: fleetIdentity(index)).applying(changes)
            flash.close()
        }
        store.close()

        let reopened = try FleetStore.openOrCreate(at: path)
        defer { reopened.close() }
        let shared = SharedPhoneState()
        reopened.sharing = { shared.sharing($0) }
        for index in 0..<3 {
            let snapshot = try reopened.phone(fleetIdentity(index)).load()
            let plain = try #require(expected[fleetIdentity(index).mac])
            #expect(snapshot == plain)
            #expect(snapshot.parameters.dictionary == plain.parameters.dictionary)
            #expect(snapshot.parameters.base != nil)
            for kind in FileKind.deviceFiles {
                #expect(snapshot.savedFiles[kind]?.body == plain.savedFiles[kind]?.body)
            }
            guard case .delta = snapshot.savedFiles[.product]?.savedBody.storage else {
                Issue.record("phone \(index): the saved product file is not a delta against the fleet's copy")
                continue
            }
        }
        // The rows the store compares a phone's next write with are the shared table, not a full copy.
        #expect(reopened.writtenParameters.values.allSatisfy { $0.base != nil })
    }

    @Test func factoryResetKeepsTheIdentityClearsTheRestAndLogsItself() throws {
        let store = try FleetStore.openOrCreate(at: path, batchInterval: .seconds(3600))
        defer { store.close() }
        let flash = try store.phone(testIdentity)
        let other = try store.phone(fleetIdentity(1))
        try flash.apply(everyPartChanges(boot: 3))
        try other.apply(fleetCycle(1, cycle: 1))
        try store.flush()

        let reset = LogEntry(at: at(9_000), boot: 3, level: .warning, kind: "factory-reset", message: "Reset")
        try flash.factoryReset(event: reset)
        #expect(try flash.load() == FlashSnapshot(identity: testIdentity))
        #expect(try flash.events() == [reset])
        var after = FlashChanges()
        after.bootCount = 1
        after.events = [LogEntry(at: at(9_001), boot: 1, kind: "state", message: "Powered on")]
        try flash.apply(after)
        let expected = FlashSnapshot(identity: testIdentity).applying(after)
        #expect(try flash.load() == expected)
        #expect(try flash.events() == [reset] + after.events)

        try store.flush()
        #expect(try flash.load() == expected)
        #expect(try flash.events() == [reset] + after.events)
        for table in ["saved_files", "parameters", "local_edits", "file_status", "file_key", "root_certificates"] {
            #expect(try rawInteger(path, "SELECT count(*) FROM \(table) WHERE mac = '0080F0C571EB'") == 0, "\(table)")
        }
        // The other phone is untouched.
        #expect(try other.load() == FlashSnapshot(identity: fleetIdentity(1)).applying(fleetCycle(1, cycle: 1)))
    }

    @Test func whileABatchIsWrittenPhonesApplyAndNewPhonesLoadWithoutWaiting() throws {
        let store = try FleetStore.openOrCreate(at: path, batchInterval: .seconds(3600))
        defer { store.close() }
        let flash = try store.phone(testIdentity)
        let first = everyPartChanges(boot: 1)
        try flash.apply(first)
        let second = {
            var changes = FlashChanges()
            changes.bootCount = 2
            changes.events = [LogEntry(at: at(7_000), boot: 2, kind: "state", message: "Powered on")]
            return changes
        }()
        // The hook runs inside the batch, on the flushing thread, which holds the database: anything here that
        // waited for the batch would deadlock.
        let seen = Locked<(FlashSnapshot?, [MAC]?, FlashSnapshot?)>((nil, nil, nil))
        try store.withDatabase { () throws(FlashError) in
            store.duringBatch = {
                let during = try? store.load(testMAC)
                let macs = try? store.macs()
                try? store.accept(PendingWrite(changes: second), for: testMAC)
                seen.set((during, macs, try? store.load(testMAC)))
            }
        }
        try store.flush()
        let (during, macs, afterApply) = seen.get()
        #expect(during == snapshotAfter(first))
        #expect(macs == [testMAC])
        #expect(afterApply == snapshotAfter(first).applying(second))
        // The change made during the batch is pending for the next one.
        try store.withDatabase { () throws(FlashError) in store.duringBatch = nil }
        #expect(try rawInteger(path, "SELECT boot_count FROM state") == 1)
        #expect(try flash.load() == snapshotAfter(first).applying(second))
        #expect(try flash.events() == first.events + second.events)
        try store.flush()
        #expect(try rawInteger(path, "SELECT boot_count FROM state") == 2)
        #expect(store.statistics.batches == 2)
    }

    @Test func theBacklogCountsPhonesNotYetWrittenDownToZero() throws {
        let store = try FleetStore.openOrCreate(at: path, batchInterval: .seconds(3600))
        defer { store.close() }
        #expect(store.backlog == 0)
        var flashes: [any FlashBackend] = []
        for index in 0..<5 {
            let flash = try store.phone(fleetIdentity(index))
            try flash.apply(everyPartChanges(boot: 1))
            flashes.append(flash)
        }
        // A second change of a phone already waiting does not count it twice.
        try flashes[0].apply(everyPartChanges(boot: 2))
        #expect(store.backlog == 5)
        // Inside the batch, after it has written every phone: nothing left to write, though not yet committed.
        let during = Locked<Int?>(nil)
        try store.withDatabase { () throws(FlashError) in store.duringBatch = { during.set(store.backlog) } }
        try store.flush()
        #expect(during.get() == 0)
        #expect(store.backlog == 0)
        try store.withDatabase { () throws(FlashError) in store.duringBatch = nil }
        try flashes[3].apply(everyPartChanges(boot: 3))
        #expect(store.backlog == 1)
        try store.flush()
        #expect(store.backlog == 0)
    }

    @Test func pendingEventsPackedInOneBufferComeBackExactly() {
        let events = [
            LogEntry(at: at(1), boot: 1, level: .warning, kind: "fetch-failed", message: "Grüße ☎ 😀", fields: [:]),
            LogEntry(at: at(2), boot: 2, kind: "", message: "", fields: ["url": "http://h/a?b=c&d", "": "é\n\"x\""]),
            LogEntry(at: PhoneTime(millisecondsSinceEpoch: -5), boot: Int.max, level: .debug, kind: "k", message: "m"),
        ]
        var packed = PackedEvents()
        packed.append(contentsOf: events)
        #expect(packed.entries == events && packed.count == 3)
        var more = PackedEvents()
        more.append(contentsOf: Array(events.reversed()))
        packed.append(more)
        #expect(packed.entries == events + events.reversed())
        packed.keepLast(4)
        #expect(packed.entries == Array((events + events.reversed()).suffix(4)))
        packed.keepLast(9)
        #expect(packed.count == 4)
        packed.keepLast(0)
        #expect(packed.isEmpty && packed.entries.isEmpty)
        packed.append(contentsOf: events)
        #expect(packed.entries == events)
        // A write keeps its changes without their events: those are packed.
        var changes = FlashChanges()
        changes.events = events
        changes.bootCount = 4
        let write = PendingWrite(changes: changes)
        #expect(write.changes.events.isEmpty && write.changes.bootCount == 4 && write.events.entries == events)
    }

    @Test func eachPhonesEventLogIsTrimmedToItsNewestEntries() throws {
        let store = try FleetStore.openOrCreate(at: path, batchInterval: .seconds(3600), eventLimit: 5)
        defer { store.close() }
        let flash = try store.phone(testIdentity)
        let other = try store.phone(fleetIdentity(1))
        func entries(_ range: Range<Int>, boot: Int = 1) -> [LogEntry] {
            range.map { LogEntry(at: at(Int64($0)), boot: boot, kind: "k", message: "e\($0)") }
        }
        var changes = FlashChanges()
        changes.events = entries(0..<3)
        try flash.apply(changes)
        try other.apply(changes)
        try store.flush()
        changes.events = entries(3..<7, boot: 2)
        try flash.apply(changes)
        // Pending and stored together, trimmed as the batch will trim them.
        #expect(try flash.events() == entries(2..<3) + entries(3..<7, boot: 2))
        #expect(try flash.events(boot: 1) == entries(2..<3))
        try store.flush()
        #expect(try flash.events() == entries(2..<3) + entries(3..<7, boot: 2))
        #expect(try rawInteger(path, "SELECT count(*) FROM events WHERE mac = '0080F0C571EB'") == 5)
        #expect(try other.events() == entries(0..<3))

        // More than the limit in one batch, and across many applies between batches.
        for index in 7..<30 {
            changes.events = entries(index..<(index + 1), boot: 3)
            try flash.apply(changes)
        }
        #expect(try flash.events() == entries(25..<30, boot: 3))
        try store.flush()
        #expect(try flash.events() == entries(25..<30, boot: 3))
        #expect(try flash.events(limit: 2) == entries(28..<30, boot: 3))
        #expect(try rawInteger(path, "SELECT count(*) FROM events WHERE mac = '0080F0C571EB'") == 5)
    }

    @Test func aChangeTheSchemaWouldRefuseIsRefusedAtApplyNotInTheSharedBatch() throws {
        let store = try FleetStore.openOrCreate(at: path, batchInterval: .seconds(3600))
        defer { store.close() }
        let flash = try store.phone(testIdentity)
        let other = try store.phone(fleetIdentity(1))
        try other.apply(fleetCycle(1, cycle: 1))
        var bad = FlashChanges()
        bad.rootCertificates = [RootCertificate(slot: 4, url: "https://p/ca.pem", pem: testPEM, savedAt: at(1))]
        bad.bootCount = 7
        expectFlashError(.io, path: path, mentioning: ["slot 4", "0080F0C571EB", "nothing was changed"]) {
            try flash.apply(bad)
        }
        #expect(try flash.load().bootCount == 0)
        try store.flush()  // the others' batch goes through
        #expect(try other.load().bootCount == 1)
    }

    @Test func aChangedTableWritesOnlyTheRowsThatChanged() throws {
        func table(_ values: [String: String]) -> ParameterTable {
            ParameterTable(
                Dictionary(
                    uniqueKeysWithValues: values.map {
                        ($0.key, Parameter(name: $0.key, value: $0.value, source: .master))
                    }
                )
            )
        }
        var values = Dictionary(uniqueKeysWithValues: (0..<40).map { ("PARAM_\($0)", "v\($0)") })
        let store = try FleetStore.openOrCreate(at: path, batchInterval: .seconds(3600))
        let flash = try store.phone(testIdentity)
        var expected = FlashSnapshot(identity: testIdentity)
        for step in 0..<4 {
            var changes = FlashChanges()
            changes.parameters = table(values)
            try flash.apply(changes)
            expected = expected.applying(changes)
            try store.flush()
            #expect(try flash.load() == expected)
            #expect(try rawInteger(path, "SELECT count(*) FROM parameters") == Int64(values.count))
            // One value changed, one removed, one added: the next batch writes just those rows.
            values["PARAM_\(step)"] = "changed \(step)"
            values["PARAM_\(39 - step)"] = nil
            values["NEW_\(step)"] = "new"
        }
        // A row the store did not write itself is not rewritten: the diff is against what it wrote.
        try rawSQL(path, "UPDATE parameters SET value = 'by hand' WHERE name = 'PARAM_20'")
        var changes = FlashChanges()
        changes.parameters = table(values.merging(["PARAM_5": "last"]) { _, new in new })
        try flash.apply(changes)
        expected = expected.applying(changes)
        try store.flush()
        flash.close()
        store.close()
        let reopened = try FleetStore.openOrCreate(at: path)
        defer { reopened.close() }
        let again = try reopened.phone(testIdentity)
        var reread = try again.load()
        #expect(reread.parameters["PARAM_20"]?.value == "by hand")
        reread.parameters["PARAM_20"] = expected.parameters["PARAM_20"]
        #expect(reread == expected)
    }

    @Test func bodiesEveryPhoneSavesAreStoredOnceAndUnusedOnesGoAtClose() throws {
        let shared = body(8000, seed: 7)
        let store = try FleetStore.openOrCreate(at: path, batchInterval: .seconds(3600))
        var expected: [MAC: FlashSnapshot] = [:]
        for index in 0..<20 {
            let flash = try store.phone(fleetIdentity(index))
            var changes = FlashChanges()
            changes.savedFiles = [
                SavedFile(kind: .product, url: "http://prov/p.cfg", body: shared, savedAt: at(Int64(index))),
                SavedFile(kind: .master, url: "http://prov/m.cfg", body: shared, savedAt: at(Int64(index))),
                SavedFile(
                    kind: .standard,
                    url: "http://prov/\(index).cfg",
                    body: body(900, seed: UInt8(index)),
                    savedAt: at(1)
                ),
                SavedFile(kind: .initial, url: "http://prov/i.cfg", body: [], savedAt: at(1)),
            ]
            try flash.apply(changes)
            expected[fleetIdentity(index).mac] = FlashSnapshot(identity: fleetIdentity(index)).applying(changes)
            flash.close()
        }
        try store.flush()
        // One shared body, one empty one, and each phone's own.
        #expect(try rawInteger(path, "SELECT count(*) FROM bodies") == 22)
        #expect(try rawInteger(path, "SELECT count(*) FROM saved_files") == 80)
        // A phone's standard file replaced, another phone reset: their old bodies are unused, and go at close.
        let replaced = try store.phone(fleetIdentity(0))
        var changes = FlashChanges()
        changes.savedFiles = [SavedFile(kind: .standard, url: "http://prov/0.cfg", body: shared, savedAt: at(9))]
        try replaced.apply(changes)
        expected[fleetIdentity(0).mac] = expected[fleetIdentity(0).mac]?.applying(changes)
        replaced.close()
        let reset = try store.phone(fleetIdentity(1))
        let event = LogEntry(at: at(10), boot: 0, kind: "factory-reset", message: "reset")
        try reset.factoryReset(event: event)
        expected[fleetIdentity(1).mac] = FlashSnapshot(identity: fleetIdentity(1))
        reset.close()
        store.close()
        #expect(try rawInteger(path, "SELECT count(*) FROM bodies") == 20)
        let reopened = try FleetStore.openOrCreate(at: path)
        defer { reopened.close() }
        for index in 0..<20 {
            let flash = try reopened.phone(fleetIdentity(index))
            #expect(try flash.load() == expected[fleetIdentity(index).mac])
            flash.close()
        }
    }

    /// A product file as a fleet's phones keep it: a whole copy of the body their `SharedPhoneState` shares.
    private func sharedProduct(_ shared: SharedPhoneState, _ bytes: [UInt8], index: Int) throws -> SavedFile {
        let saved = shared.savedBody(bytes, kind: .product)
        try #require(saved.sharedContent != nil)
        return SavedFile(kind: .product, url: "http://prov/p.cfg", savedBody: saved, savedAt: at(Int64(index)))
    }

    @Test func aSharedBodyIsLookedUpOncePerStoreNotOncePerPhone() throws {
        let shared = SharedPhoneState()
        let bytes = body(8000, seed: 3)
        // A body of the phone's own has no shared content; a copy of the shared one has.
        #expect(SavedBody(bytes).sharedContent == nil)
        let store = try FleetStore.openOrCreate(at: path, batchInterval: .seconds(3600))
        defer { store.close() }
        func save(_ index: Int) throws -> FlashChanges {
            let flash = try store.phone(fleetIdentity(index))
            defer { flash.close() }
            var changes = FlashChanges()
            changes.savedFiles = [try sharedProduct(shared, bytes, index: index)]
            try flash.apply(changes)
            return changes
        }
        _ = try save(0)
        _ = try save(1)
        try store.flush()
        #expect(try rawInteger(path, "SELECT count(*) FROM bodies") == 1)
        // Were the next phone's copy looked up by its hash, it would not be found now, and would be stored again.
        // (Through the store's own connection: another connection's write makes the store forget its rows.)
        try store.withDatabase { () throws(FlashError) in
            try store.connection.execute("UPDATE bodies SET hash = hash + 1")
        }
        let changes = try save(2)
        try store.flush()
        #expect(try rawInteger(path, "SELECT count(*) FROM bodies") == 1)
        let flash = try store.phone(fleetIdentity(2))
        defer { flash.close() }
        #expect(try flash.load() == FlashSnapshot(identity: fleetIdentity(2)).applying(changes))
    }

    @Test func aSharedBodyRowMadeByABatchThatFailedIsNotRemembered() throws {
        let shared = SharedPhoneState()
        let bytes = body(8000, seed: 5)
        let store = try FleetStore.openOrCreate(at: path, batchInterval: .seconds(3600))
        defer { store.close() }
        // Phone 1's own body takes row 1, the shared one row 2; then its product row fails, and the batch with it.
        // (The trigger comes and goes through the store's own connection: another connection's write would make the
        // store forget every remembered row anyway, and this test would not see what a failed batch leaves.)
        func sql(_ text: String) throws {
            try store.withDatabase { () throws(FlashError) in try store.connection.execute(text) }
        }
        try sql(
            "CREATE TRIGGER fail BEFORE INSERT ON saved_files WHEN NEW.kind = 'product' "
                + "BEGIN SELECT RAISE(ABORT, 'injected'); END;"
        )
        let phone1 = try store.phone(fleetIdentity(1))
        var changes = FlashChanges()
        changes.savedFiles = [
            SavedFile(kind: .standard, url: "http://prov/1.cfg", body: body(900, seed: 1), savedAt: at(1)),
            try sharedProduct(shared, bytes, index: 1),
        ]
        try phone1.apply(changes)
        expectFlashError(.io, path: path, mentioning: ["injected"]) { try store.flush() }
        try sql("DROP TRIGGER fail")
        // Phone 0 comes first in the next batch: its own body takes row 1 and phone 1's row 2, which the shared
        // body had in the batch that failed.
        let phone0 = try store.phone(fleetIdentity(0))
        var own = FlashChanges()
        own.savedFiles = [
            SavedFile(kind: .standard, url: "http://prov/0.cfg", body: body(700, seed: 9), savedAt: at(2))
        ]
        try phone0.apply(own)
        try store.flush()
        #expect(try rawInteger(path, "SELECT count(*) FROM bodies") == 3)
        #expect(try phone1.load() == FlashSnapshot(identity: fleetIdentity(1)).applying(changes))
        phone0.close()
        phone1.close()
        // Read back from the file, not from memory.
        store.close()
        let reopened = try FleetStore.openOrCreate(at: path)
        defer { reopened.close() }
        let again = try reopened.phone(fleetIdentity(1))
        defer { again.close() }
        #expect(try again.load().savedFiles[.product]?.body == bytes)
    }

    @Test func aSharedBodyRowThatExtractDeletedMeanwhileIsStoredAgain() throws {
        let shared = SharedPhoneState()
        let bytes = body(8000, seed: 11)
        let store = try FleetStore.openOrCreate(at: path, batchInterval: .seconds(3600))
        defer { store.close() }
        // Phone 0 saves the shared body, which then becomes unused when the phone is reset.
        let phone0 = try store.phone(fleetIdentity(0))
        var first = FlashChanges()
        first.savedFiles = [try sharedProduct(shared, bytes, index: 0)]
        try phone0.apply(first)
        try store.flush()
        try phone0.factoryReset(event: LogEntry(at: at(5), boot: 0, kind: "factory-reset", message: "reset"))
        phone0.close()
        try store.flush()
        // vphone flash extract, run meanwhile, deletes the bodies no saved file uses when it closes the store.
        let extract = try FleetStore.open(at: path)
        try extract.extract(mac: fleetIdentity(0).mac, to: directory.file("zero.flash"))
        extract.close()
        #expect(try rawInteger(path, "SELECT count(*) FROM bodies") == 0)
        // Phone 1's own body now takes the row number the shared body had; its copy of the shared body must not.
        let phone1 = try store.phone(fleetIdentity(1))
        defer { phone1.close() }
        var second = FlashChanges()
        second.savedFiles = [
            SavedFile(kind: .standard, url: "http://prov/1.cfg", body: body(900, seed: 1), savedAt: at(6)),
            try sharedProduct(shared, bytes, index: 1),
        ]
        try phone1.apply(second)
        try store.flush()
        #expect(try rawInteger(path, "SELECT count(*) FROM bodies") == 2)
        #expect(try store.load(fleetIdentity(1).mac).savedFiles[.product]?.body == bytes)
        let image = directory.file("one.flash")
        try store.extract(mac: fleetIdentity(1).mac, to: image)
        let extracted = try FlashStore.open(at: image, readOnly: true)
        defer { extracted.close() }
        #expect(try extracted.load().savedFiles[.product]?.body == bytes)
    }

    @Test func aSchema1StoreIsReadAsItIsAndUpgradedWhenOpenedToWrite() throws {
        // A store as the vphone before schema 2 made it, with one phone and its saved files.
        try rawSQL(path, FleetStore.schemaV1 + "PRAGMA application_id = \(FleetStore.applicationID);")
        let mac = testIdentity.mac.upper
        try rawSQL(
            path,
            """
            INSERT INTO identity VALUES ('\(mac)', 'KX-UTG300', '03.210', 5);
            INSERT INTO state VALUES ('\(mac)', 3);
            INSERT INTO saved_files VALUES ('\(mac)', 'product', 'http://prov/p.cfg', x'00010203', 7);
            INSERT INTO saved_files VALUES ('\(mac)', 'master', 'http://prov/m.cfg', x'00010203', 8);
            INSERT INTO saved_files VALUES ('\(mac)', 'standard', 'http://prov/s.cfg', x'', 9);
            """
        )
        var expected = FlashSnapshot(
            identity: Identity(mac: testIdentity.mac, model: "KX-UTG300", firmware: "03.210", createdAt: at(5))
        )
        expected.bootCount = 3
        expected.savedFiles = [
            .product: SavedFile(kind: .product, url: "http://prov/p.cfg", body: [0, 1, 2, 3], savedAt: at(7)),
            .master: SavedFile(kind: .master, url: "http://prov/m.cfg", body: [0, 1, 2, 3], savedAt: at(8)),
            .standard: SavedFile(kind: .standard, url: "http://prov/s.cfg", body: [], savedAt: at(9)),
        ]
        let readOnly = try FleetStore.open(at: path, readOnly: true)
        let early = directory.file("early.flash")
        try readOnly.extract(mac: testIdentity.mac, to: early)
        readOnly.close()
        let earlyImage = try FlashStore.open(at: early, readOnly: true)
        #expect(try earlyImage.load() == expected)
        earlyImage.close()
        #expect(try rawInteger(path, "PRAGMA user_version") == 1)

        let store = try FleetStore.openOrCreate(at: path)
        #expect(try rawInteger(path, "PRAGMA user_version") == 2)
        #expect(try rawInteger(path, "SELECT count(*) FROM bodies") == 2)
        let flash = try store.phone(testIdentity)
        #expect(try flash.load() == expected)
        flash.close()
        let image = directory.file("phone.flash")
        try store.extract(mac: testIdentity.mac, to: image)
        store.close()
        let extracted = try FlashStore.open(at: image, readOnly: true)
        defer { extracted.close() }
        #expect(try extracted.load() == expected)
    }

    @Test func aFailedBatchKeepsItsChangesAndTheNextBatchWritesThem() throws {
        let store = try FleetStore.openOrCreate(at: path, batchInterval: .seconds(3600))
        defer { store.close() }
        let flash = try store.phone(testIdentity)
        try store.flush()
        try rawSQL(path, "CREATE TRIGGER fail BEFORE INSERT ON parameters BEGIN SELECT RAISE(ABORT, 'injected'); END;")
        let first = fleetCycle(0, cycle: 1)
        try flash.apply(first)
        expectFlashError(.io, path: path, mentioning: ["injected"]) { try store.flush() }
        #expect(store.failure?.message.contains("injected") == true)
        #expect(store.statistics.failedBatches == 1)
        // Nothing of the batch was written, but the phone still sees its change, and more come on top.
        #expect(try rawInteger(path, "SELECT count(*) FROM file_status") == 0)
        let second = fleetCycle(0, cycle: 2)
        try flash.apply(second)
        let expected = FlashSnapshot(identity: testIdentity).applying(first).applying(second)
        #expect(try flash.load() == expected)

        try rawSQL(path, "DROP TRIGGER fail")
        try store.flush()
        #expect(store.failure == nil)
        #expect(try flash.load() == expected)
        #expect(try flash.events() == first.events + second.events)
        #expect(try rawInteger(path, "SELECT boot_count FROM state") == 2)
    }

    @Test func batchesRunInTheBackgroundWithoutFlush() throws {
        let store = try FleetStore.openOrCreate(at: path, batchInterval: .milliseconds(20))
        defer { store.close() }
        let flash = try store.phone(testIdentity)
        try flash.apply(fleetCycle(0, cycle: 1))
        let deadline = ContinuousClock.now + .seconds(10)
        while try rawInteger(path, "SELECT count(*) FROM parameters") == 0, ContinuousClock.now < deadline {
            usleep(10_000)
        }
        #expect(try rawInteger(path, "SELECT count(*) FROM parameters") == 25)
        #expect(store.statistics.batches >= 1)
    }

    @Test func onePhoneRuntimePerMACAndClosedThingsSaySo() throws {
        let store = try FleetStore.openOrCreate(at: path)
        let flash = try store.phone(testIdentity)
        expectFlashError(.locked, path: path, mentioning: ["0080F0C571EB", "already running"]) {
            _ = try store.phone(testIdentity)
        }
        try flash.apply(fleetCycle(0, cycle: 1))
        flash.close()
        expectFlashError(.io, path: path, mentioning: ["closed"]) { _ = try flash.load() }
        let again = try store.phone(testIdentity)  // allowed once closed, and sees the pending change
        #expect(try again.load().bootCount == 1)
        store.close()
        expectFlashError(.io, path: path, mentioning: ["closed"]) { try again.apply(fleetCycle(0, cycle: 2)) }
        expectFlashError(.io, path: path, mentioning: ["closed"]) { _ = try again.load() }
        expectFlashError(.io, path: path, mentioning: ["closed"]) { _ = try store.phone(fleetIdentity(1)) }
        store.close()  // idempotent
        let reopened = try FleetStore.open(at: path)
        defer { reopened.close() }
        #expect(try reopened.phone(testIdentity).load().bootCount == 1)
    }

    // MARK: - Extract

    @Test func anExtractedPhoneIsAWholeSinglePhoneImage() throws {
        let store = try FleetStore.openOrCreate(at: path, batchInterval: .seconds(3600))
        defer { store.close() }
        let flash = try store.phone(testIdentity)
        try flash.apply(everyPartChanges(boot: 1))
        try store.flush()
        var second = everyPartChanges(boot: 2)
        second.removeRootCertificates = [1]
        try flash.apply(second)  // still pending: extract flushes it first
        let neighbour = try store.phone(fleetIdentity(1))
        try neighbour.apply(fleetCycle(1, cycle: 1))

        let image = directory.file("out/phone.flash")
        try store.extract(mac: testMAC, to: image)
        let extracted = try FlashStore.open(at: image)
        defer { extracted.close() }
        #expect(try extracted.load() == flash.load())
        #expect(try extracted.events() == flash.events())
        #expect(try extracted.readIdentity() == testIdentity)
        try extracted.integrityCheck()
        #expect(try fileMode(image) == 0o600)

        // From a store opened by another vphone (the CLI), read-only.
        let readOnly = try FleetStore.open(at: path, readOnly: true)
        defer { readOnly.close() }
        try readOnly.extract(mac: fleetIdentity(1).mac, to: directory.file("neighbour.flash"))
        #expect(try FlashStore.open(at: directory.file("neighbour.flash")).load() == neighbour.load())
    }

    @Test func extractRefusesAnUnknownMACAndAnExistingTarget() throws {
        let store = try FleetStore.openOrCreate(at: path)
        defer { store.close() }
        _ = try store.phone(testIdentity)
        let image = directory.file("phone.flash")
        expectFlashError(.notFound, path: path, mentioning: ["no phone 0080F0C571FF", "1 phone"]) {
            try store.extract(mac: testMAC.advanced(by: 20), to: image)
        }
        #expect(!FileManager.default.fileExists(atPath: image))
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: image))
        expectFlashError(.alreadyExists, path: image, mentioning: ["already exists", "--to"]) {
            try store.extract(mac: testMAC, to: image)
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: image)) == Data("keep me".utf8))
    }

    // MARK: - Refusals

    @Test func aSinglePhonesImageIsNotAFleetStoreAndTheOtherWayRound() throws {
        let image = directory.file("phone.flash")
        try FlashStore.create(at: image, identity: testIdentity).close()
        let before = try Data(contentsOf: URL(fileURLWithPath: image))
        expectFlashError(.notAnImage, path: image, mentioning: ["single phone's flash image, not a fleet store"]) {
            _ = try FleetStore.openOrCreate(at: image)
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: image)) == before)

        try FleetStore.openOrCreate(at: path).close()
        expectFlashError(.notAnImage, path: path, mentioning: ["fleet store", "vphone flash extract"]) {
            _ = try FlashStore.open(at: path)
        }
    }

    @Test func filesThatAreNotFleetStoresAreRefusedUntouched() throws {
        let random = directory.file("random.db")
        try Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7919 &+ 13) }).write(to: URL(fileURLWithPath: random))
        expectFlashError(.notSQLite, path: random, mentioning: ["not a vphone fleet store"]) {
            _ = try FleetStore.openOrCreate(at: random)
        }
        let empty = directory.file("empty.db")
        FileManager.default.createFile(atPath: empty, contents: Data())
        expectFlashError(.notSQLite, path: empty, mentioning: ["empty"]) { _ = try FleetStore.openOrCreate(at: empty) }
        #expect(try Data(contentsOf: URL(fileURLWithPath: empty)).isEmpty)

        let foreign = directory.file("foreign.db")
        try rawSQL(foreign, "CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        expectFlashError(.notAnImage, path: foreign, mentioning: ["not a vphone fleet store", "VPHF"]) {
            _ = try FleetStore.openOrCreate(at: foreign)
        }

        try FleetStore.openOrCreate(at: path).close()
        try rawSQL(path, "PRAGMA user_version = \(FleetStore.schemaVersion + 1)")
        expectFlashError(.newerSchema, path: path, mentioning: ["newer vphone", "upgrade vphone"]) {
            _ = try FleetStore.openOrCreate(at: path)
        }
        try rawSQL(path, "PRAGMA user_version = \(FleetStore.schemaVersion); DROP INDEX events_by_phone;")
        expectFlashError(.corrupt, path: path, mentioning: ["events_by_phone"]) {
            _ = try FleetStore.openOrCreate(at: path)
        }

        let missing = directory.file("missing.db")
        expectFlashError(.notFound, path: missing, mentioning: ["no fleet store"]) {
            _ = try FleetStore.open(at: missing)
        }
        #expect(!FileManager.default.fileExists(atPath: missing))
    }

    /// Damage a phone's rows can hold: each is reported naming the phone, never read as a smaller truth (a saved
    /// file left out of the image) or a crash (a boot count the next boot cannot add one to).
    @Test func aPhoneWhoseRowsAreDamagedIsReportedNotReadAsLess() throws {
        let store = try FleetStore.openOrCreate(at: path)
        try store.phone(testIdentity).apply(everyPartChanges(boot: 1))
        try store.flush()
        store.close()
        try rawSQL(path, "UPDATE saved_files SET body_id = 99999 WHERE kind = 'product'")
        expectFlashError(.corrupt, path: path, mentioning: [testMAC.upper, "product", "99999", "bodies"]) {
            let reopened = try FleetStore.open(at: path, readOnly: true)
            defer { reopened.close() }
            try reopened.extract(mac: testMAC, to: directory.file("lost.flash"))
        }
        #expect(!FileManager.default.fileExists(atPath: directory.file("lost.flash")))

        try rawSQL(path, "UPDATE saved_files SET body_id = (SELECT min(id) FROM bodies)")
        for count in [Int64(FlashSnapshot.maxBootCount) + 1, Int64.max] {
            try rawSQL(path, "UPDATE state SET boot_count = \(count)")
            expectFlashError(.corrupt, path: path, mentioning: [testMAC.upper, "boot count \(count)"]) {
                let reopened = try FleetStore.open(at: path, readOnly: true)
                defer { reopened.close() }
                try reopened.extract(mac: testMAC, to: directory.file("count-\(count).flash"))
            }
            #expect(!FileManager.default.fileExists(atPath: directory.file("count-\(count).flash")))
        }
    }

    @Test func aDamagedMACInTheStoreIsReportedNotGuessed() throws {
        try FleetStore.openOrCreate(at: path).close()
        try rawSQL(path, "INSERT INTO identity VALUES ('nonsense', 'm', 'f', 0)")
        expectFlashError(.corrupt, path: path, mentioning: ["nonsense"]) { _ = try FleetStore.openOrCreate(at: path) }
    }
}
