import PhoneCore

extension FlashStore {
    // MARK: - Reading

    /// Everything in flash, read in one transaction so a concurrent writer is seen whole or not at all.
    ///
    /// - Throws: `corrupt` naming table, column and value when the image holds something this vphone cannot
    ///   read (an unknown file kind, a malformed MAC, a NULL...).
    public func load() throws(FlashError) -> FlashSnapshot {
        try connection.transaction(.deferred) { () throws(FlashError) -> FlashSnapshot in try readSnapshot() }
    }

    /// The body of `load`, inside a transaction the caller holds.
    func readSnapshot() throws(FlashError) -> FlashSnapshot {
        var snapshot = FlashSnapshot(identity: try readIdentity())
        var bootCount: Int?
        try connection.query("SELECT boot_count FROM state WHERE id = 1", table: "state") {
            (row) throws(FlashError) in bootCount = try row.int(0)
        }
        guard let bootCount else { throw FlashError.corrupt(path, "table state has no row") }
        guard (0...FlashSnapshot.maxBootCount).contains(bootCount) else {
            throw FlashError.corrupt(path, "the boot count \(bootCount) is outside 0...\(FlashSnapshot.maxBootCount)")
        }
        snapshot.bootCount = bootCount
        try connection.query("SELECT kind, url, body, saved_at FROM saved_files", table: "saved_files") {
            (row) throws(FlashError) in
            let file = SavedFile(
                kind: try row.value(FileKind.self, 0),
                url: try row.text(1),
                body: try row.blob(2),
                savedAt: PhoneTime(millisecondsSinceEpoch: try row.int64(3))
            )
            snapshot.savedFiles[file.kind] = file
        }
        try connection.query("SELECT name, value, source, perm, access FROM parameters", table: "parameters") {
            (row) throws(FlashError) in
            let parameter = Parameter(
                name: try row.text(0),
                value: try row.text(1),
                source: try row.value(ParameterSource.self, 2),
                perm: try row.text(3),
                access: try row.text(4)
            )
            snapshot.parameters[parameter.name] = parameter
        }
        try connection.query("SELECT name, value, edited_at FROM local_edits", table: "local_edits") {
            (row) throws(FlashError) in
            let edit = LocalEdit(
                name: try row.text(0),
                value: try row.text(1),
                editedAt: PhoneTime(millisecondsSinceEpoch: try row.int64(2))
            )
            snapshot.localEdits[edit.name] = edit
        }
        try connection.query("SELECT kind, due_at FROM timers", table: "timers") { (row) throws(FlashError) in
            snapshot.timers[try row.value(TimerKind.self, 0)] = PhoneTime(millisecondsSinceEpoch: try row.int64(1))
        }
        try connection.query("SELECT kind, url, outcome, reason, at FROM file_status", table: "file_status") {
            (row) throws(FlashError) in
            let status = FileStatus(
                kind: try row.value(FileKind.self, 0),
                url: try row.text(1),
                outcome: try row.value(FileOutcome.self, 2),
                reason: try row.text(3),
                at: PhoneTime(millisecondsSinceEpoch: try row.int64(4))
            )
            snapshot.fileStatus[status.kind] = status
        }
        try connection.query(
            "SELECT key, installed_at, source_url FROM file_key WHERE id = 1",
            table: "file_key"
        ) { (row) throws(FlashError) in
            snapshot.fileKey = FileKey(
                key: try row.text(0),
                installedAt: PhoneTime(millisecondsSinceEpoch: try row.int64(1)),
                sourceURL: try row.text(2)
            )
        }
        try connection.query("SELECT slot, url, pem, saved_at FROM root_certificates", table: "root_certificates") {
            (row) throws(FlashError) in
            let certificate = RootCertificate(
                slot: try row.int(0),
                url: try row.text(1),
                pem: try row.blob(2),
                savedAt: PhoneTime(millisecondsSinceEpoch: try row.int64(3))
            )
            snapshot.rootCertificates[certificate.slot] = certificate
        }
        return snapshot
    }

    /// The event log, oldest first.
    ///
    /// ```swift
    /// let lastBoot = try store.events(boot: snapshot.bootCount)
    /// let tail = try store.events(limit: 20)   // the newest 20
    /// ```
    /// - Parameters:
    ///   - boot: only the entries of this power-on.
    ///   - limit: only the newest `limit` entries (of that boot, if given).
    public func events(boot: Int? = nil, limit: Int? = nil) throws(FlashError) -> [LogEntry] {
        var newestFirst: [LogEntry] = []
        try connection.query(
            "SELECT at, boot, level, kind, message, fields FROM events WHERE ?1 IS NULL OR boot = ?1 "
                + "ORDER BY id DESC LIMIT ?2",
            table: "events",
            boot,
            limit.map { max(0, $0) } ?? -1
        ) { (row) throws(FlashError) in
            let text = try row.text(5)
            guard let fields = EventFields.decode(text) else {
                throw row.unknown(5, text, expected: "a JSON object of strings")
            }
            newestFirst.append(
                LogEntry(
                    at: PhoneTime(millisecondsSinceEpoch: try row.int64(0)),
                    boot: try row.int(1),
                    level: try row.value(LogEntry.Level.self, 2),
                    kind: try row.text(3),
                    message: try row.text(4),
                    fields: fields
                )
            )
        }
        return newestFirst.reversed()
    }

    /// The power-ons the event log holds entries of, in order (0: before the first boot, as after a factory reset;
    /// the oldest boots' entries go once the log holds `maxEvents`).
    public func eventBoots() throws(FlashError) -> [Int] {
        var boots: [Int] = []
        try connection.query("SELECT DISTINCT boot FROM events ORDER BY boot", table: "events") {
            (row) throws(FlashError) in boots.append(try row.int(0))
        }
        return boots
    }

    /// How many entries the event log holds, by level, and the times of the oldest and newest.
    func eventSummary() throws(FlashError) -> (byLevel: [LogEntry.Level: Int], first: PhoneTime?, last: PhoneTime?) {
        try connection.transaction(.deferred) { () throws(FlashError) in
            var byLevel: [LogEntry.Level: Int] = [:]
            try connection.query("SELECT level, count(*) FROM events GROUP BY level", table: "events") {
                (row) throws(FlashError) in byLevel[try row.value(LogEntry.Level.self, 0)] = try row.int(1)
            }
            var first: PhoneTime?
            var last: PhoneTime?
            try connection.query(
                "SELECT at FROM events WHERE id IN ((SELECT min(id) FROM events), (SELECT max(id) FROM events)) "
                    + "ORDER BY id",
                table: "events"
            ) { (row) throws(FlashError) in
                let time = PhoneTime(millisecondsSinceEpoch: try row.int64(0))
                if first == nil { first = time }
                last = time
            }
            return (byLevel, first, last)
        }
    }

    /// `PRAGMA user_version` as stored (opening has checked that this vphone reads it).
    func storedSchemaVersion() throws(FlashError) -> Int {
        var version = 0
        try connection.query("PRAGMA user_version", table: "(header)") { (row) throws(FlashError) in
            version = try row.int(0)
        }
        return version
    }

    /// The identity row, which every image has exactly one of.
    func readIdentity() throws(FlashError) -> Identity {
        var identity: Identity?
        try connection.query("SELECT mac, model, firmware, created_at FROM identity WHERE id = 1", table: "identity") {
            (row) throws(FlashError) in
            let text = try row.text(0)
            guard let mac = MAC(text) else { throw row.unknown(0, text, expected: "a MAC address (12 hex digits)") }
            identity = Identity(
                mac: mac,
                model: try row.text(1),
                firmware: try row.text(2),
                createdAt: PhoneTime(millisecondsSinceEpoch: try row.int64(3))
            )
        }
        guard let identity else { throw FlashError.corrupt(path, "table identity has no row") }
        return identity
    }
}
