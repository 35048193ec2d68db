import PhoneCore

// MARK: - Pending changes

/// What one phone changed since the last batch, in order (with `FleetStore.writtenParameters`, what a fleet store
/// keeps per phone).
struct PendingWrite {
    /// The phone is new: the batch makes its identity and state rows (keeping them if they exist).
    var create: Identity?
    /// A factory reset happened: the batch clears the phone's rows and logs this, then writes `changes`.
    var reset: LogEntry?
    /// Everything applied since (or since the last batch), merged: later writes win. Its events are in `events`.
    var changes = FlashChanges()
    /// The events logged since, packed (`PackedEvents`).
    var events = PackedEvents()

    /// `changes` as a phone applied them, its events packed.
    init(changes: FlashChanges) {
        self.changes = changes
        events.append(contentsOf: changes.events)
        self.changes.events = []
    }

    init(create: Identity? = nil, reset: LogEntry? = nil) {
        self.create = create
        self.reset = reset
    }

    /// Appends a later write. A reset wipes whatever came before it (but not the identity).
    mutating func append(_ later: PendingWrite, eventLimit: Int) {
        if create == nil { create = later.create }
        if let reset = later.reset {
            self.reset = reset
            changes = later.changes
            events = later.events
        } else {
            changes.merge(later.changes)
            events.append(later.events)
        }
        compact(eventLimit: eventLimit)
    }

    /// The snapshot after this write, exactly as the batch leaves the phone's rows.
    func applied(to snapshot: FlashSnapshot) -> FlashSnapshot {
        let base = reset == nil ? snapshot : FlashSnapshot(identity: snapshot.identity)
        return base.applying(changes)
    }

    /// Bounds memory when a phone changes often between batches (or batches fail for a while): `merge` appends, and
    /// only the last entry per key matters, as only the newest `eventLimit` events do.
    private mutating func compact(eventLimit: Int) {
        events.keepLast(eventLimit)
        if changes.savedFiles.count > FileKind.allCases.count {
            changes.savedFiles = lastPerKey(changes.savedFiles, \.kind)
        }
        if changes.fileStatus.count > FileKind.allCases.count {
            changes.fileStatus = lastPerKey(changes.fileStatus, \.kind)
        }
        if changes.rootCertificates.count > 3 {
            changes.rootCertificates = lastPerKey(changes.rootCertificates, \.slot)
        }
        if changes.setLocalEdits.count > 32 { changes.setLocalEdits = lastPerKey(changes.setLocalEdits, \.name) }
        if changes.removeLocalEdits.count > 32 {
            changes.removeLocalEdits = lastPerKey(changes.removeLocalEdits, \.self)
        }
    }

    /// The last entry for each key, in the order of those last entries.
    private func lastPerKey<T, K: Hashable>(_ list: [T], _ key: (T) -> K) -> [T] {
        var seen = Set<K>()
        var out: [T] = []
        for item in list.reversed() where seen.insert(key(item)).inserted { out.append(item) }
        return out.reversed()
    }
}

extension FleetStore {
    // MARK: - Writing one phone's rows

    /// A row of `bodies` and the shared content it holds, held weakly: once that is gone, another object may take
    /// its identity, and the entry no longer answers.
    struct BodyRow {
        weak var content: AnyObject?
        let id: Int64
    }

    /// The row of `bodies` holding `saved`'s bytes, made if there is none; a body the fleet shares is looked up
    /// once per store (`bodyRows`), not once per phone.
    private func bodyRow(for saved: SavedBody) throws(FlashError) -> Int64 {
        guard let content = saved.sharedContent else { return try Self.bodyID(for: saved.bytes, in: connection) }
        let key = ObjectIdentifier(content)
        if let row = batchBodyRows[key] ?? bodyRows[key], row.content === content { return row.id }
        let id = try Self.bodyID(for: saved.bytes, in: connection)
        batchBodyRows[key] = BodyRow(content: content, id: id)
        return id
    }

    /// Forgets every remembered body row when another connection has committed since the last batch: `vphone flash
    /// extract` closing a store deletes the bodies no saved file uses, and a row a phone's copy named by memory
    /// would then be gone, or hold other bytes once its number is taken again. Called at the start of a batch's
    /// transaction, past which no other connection commits.
    func forgetBodyRowsIfAnotherConnectionWrote() throws(FlashError) {
        var version: Int64 = 0
        try connection.query("PRAGMA data_version", table: "(header)", cached: true) { (row) throws(FlashError) in
            version = try row.int64(0)
        }
        if version != bodyRowsDataVersion { bodyRows = [:] }
        bodyRowsDataVersion = version
    }

    /// Writes only the rows of `parameters` that differ from `before` (the phone's rows now): a resync that changes
    /// one value writes one row, not the phone's hundreds. Both tables iterate in name order.
    private func writeParameters(
        _ parameters: ParameterTable,
        over before: ParameterTable,
        _ key: String
    )
        throws(FlashError)
    {
        try connection.repeating(Self.upsertParameter) { (upsert) throws(FlashError) in
            try connection.repeating(Self.deleteParameter) { (delete) throws(FlashError) in
                let old = before.makeIterator()
                var previous = old.next()
                for (name, parameter) in parameters {
                    while let p = previous, p.key < name {
                        try delete.run(key, p.key)
                        previous = old.next()
                    }
                    if let p = previous, p.key == name {
                        previous = old.next()
                        if p.value == parameter { continue }
                    }
                    try upsert.run(
                        key,
                        name,
                        parameter.value,
                        parameter.source.rawValue,
                        parameter.perm,
                        parameter.access
                    )
                }
                while let p = previous {
                    try delete.run(key, p.key)
                    previous = old.next()
                }
            }
        }
    }

    static let upsertParameter =
        "INSERT INTO parameters (mac, name, value, source, perm, access) VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
        + "ON CONFLICT (mac, name) DO UPDATE SET value = excluded.value, source = excluded.source, "
        + "perm = excluded.perm, access = excluded.access"
    static let deleteParameter = "DELETE FROM parameters WHERE mac = ?1 AND name = ?2"

    /// Writes one phone's pending changes, inside the batch's transaction: the statements of `FlashStore.write`,
    /// each restricted to the phone's MAC.
    func write(_ pending: PendingWrite, for mac: MAC) throws(FlashError) {
        let key = mac.upper
        if let identity = pending.create {
            try connection.run(
                "INSERT INTO identity (mac, model, firmware, created_at) VALUES (?1, ?2, ?3, ?4) "
                    + "ON CONFLICT (mac) DO NOTHING",
                cached: true,
                key,
                identity.model,
                identity.firmware,
                identity.createdAt.millisecondsSinceEpoch
            )
            try connection.run(
                "INSERT INTO state (mac, boot_count) VALUES (?1, 0) ON CONFLICT (mac) DO NOTHING",
                cached: true,
                key
            )
        }
        if let reset = pending.reset {
            // spec §9: everything but the identity; then the reset logs itself.
            for table in [
                "saved_files", "parameters", "local_edits", "timers", "file_status", "file_key",
                "root_certificates", "events",
            ] {
                try connection.run("DELETE FROM \(table) WHERE mac = ?1", cached: true, key)
            }
            try setBootCount(0, key)
            try append(PackedEvents.Row(reset), key)
        }
        let changes = pending.changes
        if let bootCount = changes.bootCount { try setBootCount(bootCount, key) }
        for file in changes.savedFiles {
            // One row of `bodies` per distinct content: the files every phone saves are stored once.
            let body = try bodyRow(for: file.savedBody)
            try connection.run(
                "INSERT INTO saved_files (mac, kind, url, body_id, saved_at) VALUES (?1, ?2, ?3, ?4, ?5) "
                    + "ON CONFLICT (mac, kind) DO UPDATE SET url = excluded.url, body_id = excluded.body_id, "
                    + "saved_at = excluded.saved_at",
                cached: true,
                key,
                file.kind.rawValue,
                file.url,
                body,
                file.savedAt.millisecondsSinceEpoch
            )
        }
        if let parameters = changes.parameters {
            // The rows the phone has now: none when new or just reset; else what the last batch wrote for it (or
            // what was read at its start), when known.
            let before = pending.reset != nil || pending.create != nil ? ParameterTable() : writtenParameters[mac.value]
            if let before {
                try writeParameters(parameters, over: before, key)
            } else {
                try connection.run("DELETE FROM parameters WHERE mac = ?1", cached: true, key)
                try writeParameters(parameters, over: ParameterTable(), key)
            }
            batchParameters[mac.value] = parameters
        } else if pending.reset != nil {
            batchParameters[mac.value] = ParameterTable()
        }
        for edit in changes.setLocalEdits {
            try connection.run(
                "INSERT INTO local_edits (mac, name, value, edited_at) VALUES (?1, ?2, ?3, ?4) "
                    + "ON CONFLICT (mac, name) DO UPDATE SET value = excluded.value, edited_at = excluded.edited_at",
                cached: true,
                key,
                edit.name,
                edit.value,
                edit.editedAt.millisecondsSinceEpoch
            )
        }
        for name in changes.removeLocalEdits {
            try connection.run("DELETE FROM local_edits WHERE mac = ?1 AND name = ?2", cached: true, key, name)
        }
        for timer in changes.cancelTimers {
            try connection.run("DELETE FROM timers WHERE mac = ?1 AND kind = ?2", cached: true, key, timer.rawValue)
        }
        for (timer, dueAt) in changes.armTimers {
            try connection.run(
                "INSERT INTO timers (mac, kind, due_at) VALUES (?1, ?2, ?3) ON CONFLICT (mac, kind) "
                    + "DO UPDATE SET due_at = excluded.due_at",
                cached: true,
                key,
                timer.rawValue,
                dueAt.millisecondsSinceEpoch
            )
        }
        for status in changes.fileStatus {
            try connection.run(
                "INSERT INTO file_status (mac, kind, url, outcome, reason, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
                    + "ON CONFLICT (mac, kind) DO UPDATE SET url = excluded.url, outcome = excluded.outcome, "
                    + "reason = excluded.reason, at = excluded.at",
                cached: true,
                key,
                status.kind.rawValue,
                status.url,
                status.outcome.rawValue,
                status.reason,
                status.at.millisecondsSinceEpoch
            )
        }
        // Same order as FlashSnapshot.applying: the key, then certificates set, then certificates removed.
        switch changes.fileKey {
        case .install(let fileKey):
            try connection.run(
                "INSERT INTO file_key (mac, key, installed_at, source_url) VALUES (?1, ?2, ?3, ?4) "
                    + "ON CONFLICT (mac) DO UPDATE SET key = excluded.key, installed_at = excluded.installed_at, "
                    + "source_url = excluded.source_url",
                cached: true,
                key,
                fileKey.key,
                fileKey.installedAt.millisecondsSinceEpoch,
                fileKey.sourceURL
            )
        case .clear:
            try connection.run("DELETE FROM file_key WHERE mac = ?1", cached: true, key)
        case nil:
            break
        }
        for certificate in changes.rootCertificates {
            try connection.run(
                "INSERT INTO root_certificates (mac, slot, url, pem, saved_at) VALUES (?1, ?2, ?3, ?4, ?5) "
                    + "ON CONFLICT (mac, slot) DO UPDATE SET url = excluded.url, pem = excluded.pem, "
                    + "saved_at = excluded.saved_at",
                cached: true,
                key,
                certificate.slot,
                certificate.url,
                certificate.pem,
                certificate.savedAt.millisecondsSinceEpoch
            )
        }
        for slot in changes.removeRootCertificates {
            try connection.run("DELETE FROM root_certificates WHERE mac = ?1 AND slot = ?2", cached: true, key, slot)
        }
        for event in pending.events.rows { try append(event, key) }
        if pending.reset != nil || !pending.events.isEmpty {
            // seq grows by one per entry of the phone and only its oldest are deleted, so its newest `eventLimit`
            // entries are those with the top `eventLimit` seqs.
            try connection.run(
                "DELETE FROM events WHERE mac = ?1 AND seq <= (SELECT max(seq) FROM events WHERE mac = ?1) - ?2",
                cached: true,
                key,
                eventLimit
            )
        }
    }

    private func setBootCount(_ count: Int, _ key: String) throws(FlashError) {
        try connection.run("UPDATE state SET boot_count = ?2 WHERE mac = ?1", cached: true, key, count)
    }

    private func append(_ event: PackedEvents.Row, _ key: String) throws(FlashError) {
        try connection.run(
            "INSERT INTO events (mac, seq, at, boot, level, kind, message, fields) VALUES "
                + "(?1, (SELECT coalesce(max(seq), 0) + 1 FROM events WHERE mac = ?1), ?2, ?3, ?4, ?5, ?6, ?7)",
            cached: true,
            key,
            event.at,
            event.boot,
            event.level,
            event.kind,
            event.message,
            event.fields
        )
    }

    /// Refuses, at `apply`, what the schema would refuse in the batch: a batch is shared by the whole fleet, so one
    /// phone's bad change must not fail everyone's writes.
    static func validate(_ changes: FlashChanges, mac: MAC, path: String) throws(FlashError) {
        var problems: [String] = []
        if let bootCount = changes.bootCount, bootCount < 0 { problems.append("boot count \(bootCount) is negative") }
        for slot in changes.rootCertificates.map(\.slot) where !(1...3).contains(slot) {
            problems.append("root certificate slot \(slot) is outside 1...3")
        }
        guard problems.isEmpty else {
            throw FlashError(
                kind: .io,
                path: path,
                message: "fleet store \(path) refused a write for phone \(mac): \(problems.joined(separator: "; ")); "
                    + "nothing was changed"
            )
        }
    }
}

// MARK: - Pending events

/// A phone's pending events in one buffer, as the `events` table takes them (the fields already encoded).
///
/// Kept as `LogEntry` values until the batch (about a second), each phone's 15 to 20 events (a message string and a
/// fields dictionary each) were allocated among its long-lived tables and saved bodies and freed a batch later,
/// leaving pages partly used: about 5 KB of resident memory per idle phone with `--store` (20 KB against 15 KB).
/// Packed at `apply`, the entries themselves are freed at once.
struct PackedEvents {
    /// One event as the row the batch inserts.
    struct Row: Equatable {
        var at: Int64
        var boot: Int
        var level: String
        var kind: String
        var message: String
        var fields: String

        /// The entry, as read back from the row.
        var entry: LogEntry {
            LogEntry(
                at: PhoneTime(millisecondsSinceEpoch: at),
                boot: boot,
                level: LogEntry.Level(rawValue: level) ?? .info,
                kind: kind,
                message: message,
                fields: EventFields.decode(fields) ?? [:]
            )
        }
    }

    private var bytes: [UInt8] = []
    /// Where each event starts in `bytes`, oldest first.
    private var starts: [Int] = []

    var count: Int { starts.count }
    var isEmpty: Bool { starts.isEmpty }

    mutating func append(contentsOf events: [LogEntry]) {
        for event in events { append(Row(event)) }
    }

    mutating func append(_ row: Row) {
        starts.append(bytes.count)
        put(UInt64(bitPattern: row.at))
        put(UInt64(bitPattern: Int64(row.boot)))
        for text in [row.level, row.kind, row.message, row.fields] {
            put(UInt64(text.utf8.count))
            bytes.append(contentsOf: text.utf8)
        }
    }

    mutating func append(_ other: PackedEvents) {
        let offset = bytes.count
        bytes.append(contentsOf: other.bytes)
        starts.append(contentsOf: other.starts.map { $0 + offset })
    }

    /// Drops all but the newest `limit` events.
    mutating func keepLast(_ limit: Int) {
        guard starts.count > limit else { return }
        let first = limit > 0 ? starts[starts.count - limit] : bytes.count
        bytes.removeFirst(first)
        starts = limit > 0 ? starts.suffix(limit).map { $0 - first } : []
    }

    /// The events, oldest first.
    var rows: [Row] {
        starts.map { start in
            var at = start
            func int() -> UInt64 {
                var v: UInt64 = 0
                for k in 0..<8 { v |= UInt64(bytes[at + k]) << (8 * UInt64(k)) }
                at += 8
                return v
            }
            func text() -> String {
                let length = Int(int())
                defer { at += length }
                return String(decoding: bytes[at..<(at + length)], as: UTF8.self)
            }
            let time = Int64(bitPattern: int())
            let boot = Int(Int64(bitPattern: int()))
            return Row(at: time, boot: boot, level: text(), kind: text(), message: text(), fields: text())
        }
    }

    var entries: [LogEntry] { rows.map(\.entry) }

    private mutating func put(_ value: UInt64) {
        for k in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(k)))) }
    }
}

extension PackedEvents.Row {
    /// The row of `event` (in an extension, so that the memberwise initializer stays).
    init(_ event: LogEntry) {
        self.init(
            at: event.at.millisecondsSinceEpoch,
            boot: event.boot,
            level: event.level.rawValue,
            kind: event.kind,
            message: event.message,
            fields: EventFields.encode(event.fields)
        )
    }
}
