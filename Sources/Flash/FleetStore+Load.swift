import PhoneCore

extension FleetStore {
    // MARK: - Reading one phone's rows

    /// One phone's rows as a snapshot (`FlashStore.readSnapshot`, restricted to the MAC); the caller holds the
    /// database and knows the phone is stored.
    func readPhone(_ mac: MAC) throws(FlashError) -> FlashSnapshot {
        let key = mac.upper
        var identity: Identity?
        try connection.query(
            "SELECT model, firmware, created_at FROM identity WHERE mac = ?1",
            table: "identity",
            cached: true,
            key
        ) { (row) throws(FlashError) in
            identity = Identity(
                mac: mac,
                model: try row.text(0),
                firmware: try row.text(1),
                createdAt: PhoneTime(millisecondsSinceEpoch: try row.int64(2))
            )
        }
        guard let identity else { throw Self.damaged(path, "table identity has no row for the phone \(mac)") }
        var snapshot = FlashSnapshot(identity: identity)
        var bootCount: Int?
        try connection.query("SELECT boot_count FROM state WHERE mac = ?1", table: "state", cached: true, key) {
            (row) throws(FlashError) in bootCount = try row.int(0)
        }
        guard let bootCount else { throw Self.damaged(path, "table state has no row for the phone \(mac)") }
        guard (0...FlashSnapshot.maxBootCount).contains(bootCount) else {
            throw Self.damaged(
                path,
                "the phone \(mac)'s boot count \(bootCount) is outside 0...\(FlashSnapshot.maxBootCount)"
            )
        }
        snapshot.bootCount = bootCount
        try connection.query(
            fileSchema == 1
                ? "SELECT kind, url, body, saved_at FROM saved_files WHERE mac = ?1"
                // An outer join: a saved file whose body is gone is damage to report, not a file to leave out.
                : "SELECT s.kind, s.url, b.body, s.saved_at, s.body_id, b.id FROM saved_files s "
                    + "LEFT JOIN bodies b ON b.id = s.body_id WHERE s.mac = ?1",
            table: "saved_files",
            cached: true,
            key
        ) { (row) throws(FlashError) in
            if fileSchema != 1 && row.isNull(5) {
                let kind = (try? row.text(0)) ?? "?"
                let body = (try? row.int64(4)).map(String.init) ?? "NULL"
                throw Self.damaged(
                    path,
                    "the phone \(mac)'s saved \(kind) file refers to body \(body), which table bodies does not hold"
                )
            }
            let file = SavedFile(
                kind: try row.value(FileKind.self, 0),
                url: try row.text(1),
                body: try row.blob(2),
                savedAt: PhoneTime(millisecondsSinceEpoch: try row.int64(3))
            )
            snapshot.savedFiles[file.kind] = file
        }
        try connection.query(
            "SELECT name, value, source, perm, access FROM parameters WHERE mac = ?1",
            table: "parameters",
            cached: true,
            key
        ) { (row) throws(FlashError) in
            let parameter = Parameter(
                name: try row.text(0),
                value: try row.text(1),
                source: try row.value(ParameterSource.self, 2),
                perm: try row.text(3),
                access: try row.text(4)
            )
            snapshot.parameters[parameter.name] = parameter
        }
        try connection.query(
            "SELECT name, value, edited_at FROM local_edits WHERE mac = ?1",
            table: "local_edits",
            cached: true,
            key
        ) { (row) throws(FlashError) in
            let edit = LocalEdit(
                name: try row.text(0),
                value: try row.text(1),
                editedAt: PhoneTime(millisecondsSinceEpoch: try row.int64(2))
            )
            snapshot.localEdits[edit.name] = edit
        }
        try connection.query("SELECT kind, due_at FROM timers WHERE mac = ?1", table: "timers", cached: true, key) {
            (row) throws(FlashError) in
            snapshot.timers[try row.value(TimerKind.self, 0)] = PhoneTime(millisecondsSinceEpoch: try row.int64(1))
        }
        try connection.query(
            "SELECT kind, url, outcome, reason, at FROM file_status WHERE mac = ?1",
            table: "file_status",
            cached: true,
            key
        ) { (row) throws(FlashError) in
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
            "SELECT key, installed_at, source_url FROM file_key WHERE mac = ?1",
            table: "file_key",
            cached: true,
            key
        ) { (row) throws(FlashError) in
            snapshot.fileKey = FileKey(
                key: try row.text(0),
                installedAt: PhoneTime(millisecondsSinceEpoch: try row.int64(1)),
                sourceURL: try row.text(2)
            )
        }
        try connection.query(
            "SELECT slot, url, pem, saved_at FROM root_certificates WHERE mac = ?1",
            table: "root_certificates",
            cached: true,
            key
        ) { (row) throws(FlashError) in
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

    /// One phone's stored event log, oldest first; the caller holds the database.
    ///
    /// - Parameters:
    ///   - boot: only the entries of this power-on.
    ///   - limit: only the newest `limit` of those.
    ///   - newestOfAll: only entries among the phone's newest `newestOfAll` (whatever their boot): what a batch
    ///     keeps when it adds pending entries.
    func readEvents(_ mac: MAC, boot: Int?, limit: Int?, newestOfAll: Int? = nil) throws(FlashError) -> [LogEntry] {
        var newestFirst: [LogEntry] = []
        try connection.query(
            "SELECT at, boot, level, kind, message, fields FROM events WHERE mac = ?1 AND (?2 IS NULL OR boot = ?2) "
                + "AND (?4 IS NULL OR seq > (SELECT max(seq) FROM events WHERE mac = ?1) - ?4) ORDER BY seq DESC LIMIT ?3",
            table: "events",
            cached: true,
            mac.upper,
            boot,
            limit.map { max(0, $0) } ?? -1,
            newestOfAll
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
}
