import PhoneCore

extension FlashStore {
    // MARK: - Writing

    /// Writes `changes` in one transaction: all of it or, if anything fails, none of it (spec §6).
    ///
    /// Within one `FlashChanges` the order is that of `FlashSnapshot.applying(_:)`, which the machine uses to
    /// keep its view of flash in step: local edits are set, then removed (a name in both ends up removed);
    /// timers are cancelled, then armed (a timer in both ends up armed); root certificates are set, then removed
    /// (a slot in both ends up empty); later entries of a list win over earlier ones. `parameters`, when set,
    /// replaces the whole table; a parameter is stored under its dictionary key. The event log is trimmed to the
    /// newest `maxEvents` entries. A root certificate slot outside 1...3 fails the whole change.
    ///
    /// ```swift
    /// var changes = FlashChanges()
    /// changes.savedFiles = [SavedFile(kind: .master, url: url, body: bytes, savedAt: now)]
    /// changes.events = [LogEntry(at: now, boot: 1, kind: "apply", message: "Applied the master file")]
    /// try store.apply(changes)
    /// ```
    /// - Throws: `readOnly`, `locked` (another writer held the image over 5 s), `io`, `corrupt`.
    public func apply(_ changes: FlashChanges) throws(FlashError) {
        try requireWritable()
        guard !changes.isEmpty else { return }
        try connection.transaction(.immediate) { () throws(FlashError) in try write(changes) }
    }

    /// The body of `apply`, inside a transaction the caller holds (`apply`, or `create` making a whole image).
    func write(_ changes: FlashChanges) throws(FlashError) {
        if let bootCount = changes.bootCount { try setBootCount(bootCount) }
        for file in changes.savedFiles {
            try connection.run(
                "INSERT INTO saved_files (kind, url, body, saved_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (kind) "
                    + "DO UPDATE SET url = excluded.url, body = excluded.body, saved_at = excluded.saved_at",
                cached: true,
                file.kind.rawValue,
                file.url,
                file.body,
                file.savedAt.millisecondsSinceEpoch
            )
        }
        if let parameters = changes.parameters {
            try connection.run("DELETE FROM parameters", cached: true)
            for (name, parameter) in parameters {
                try connection.run(
                    "INSERT INTO parameters (name, value, source, perm, access) VALUES (?1, ?2, ?3, ?4, ?5)",
                    cached: true,
                    name,
                    parameter.value,
                    parameter.source.rawValue,
                    parameter.perm,
                    parameter.access
                )
            }
        }
        for edit in changes.setLocalEdits {
            try connection.run(
                "INSERT INTO local_edits (name, value, edited_at) VALUES (?1, ?2, ?3) ON CONFLICT (name) "
                    + "DO UPDATE SET value = excluded.value, edited_at = excluded.edited_at",
                cached: true,
                edit.name,
                edit.value,
                edit.editedAt.millisecondsSinceEpoch
            )
        }
        for name in changes.removeLocalEdits {
            try connection.run("DELETE FROM local_edits WHERE name = ?1", cached: true, name)
        }
        for timer in changes.cancelTimers {
            try connection.run("DELETE FROM timers WHERE kind = ?1", cached: true, timer.rawValue)
        }
        for (timer, dueAt) in changes.armTimers {
            try connection.run(
                "INSERT INTO timers (kind, due_at) VALUES (?1, ?2) ON CONFLICT (kind) "
                    + "DO UPDATE SET due_at = excluded.due_at",
                cached: true,
                timer.rawValue,
                dueAt.millisecondsSinceEpoch
            )
        }
        for status in changes.fileStatus {
            try connection.run(
                "INSERT INTO file_status (kind, url, outcome, reason, at) VALUES (?1, ?2, ?3, ?4, ?5) "
                    + "ON CONFLICT (kind) DO UPDATE SET url = excluded.url, outcome = excluded.outcome, "
                    + "reason = excluded.reason, at = excluded.at",
                cached: true,
                status.kind.rawValue,
                status.url,
                status.outcome.rawValue,
                status.reason,
                status.at.millisecondsSinceEpoch
            )
        }
        // Same order as FlashSnapshot.applying: the key, then certificates set, then certificates removed (a
        // slot in both ends up empty).
        switch changes.fileKey {
        case .install(let key):
            try connection.run(
                "INSERT INTO file_key (id, key, installed_at, source_url) VALUES (1, ?1, ?2, ?3) ON CONFLICT (id) "
                    + "DO UPDATE SET key = excluded.key, installed_at = excluded.installed_at, "
                    + "source_url = excluded.source_url",
                cached: true,
                key.key,
                key.installedAt.millisecondsSinceEpoch,
                key.sourceURL
            )
        case .clear:
            try connection.run("DELETE FROM file_key", cached: true)
        case nil:
            break
        }
        for certificate in changes.rootCertificates {
            // CHECK (slot BETWEEN 1 AND 3): any other slot makes the whole change fail (constraint).
            try connection.run(
                "INSERT INTO root_certificates (slot, url, pem, saved_at) VALUES (?1, ?2, ?3, ?4) "
                    + "ON CONFLICT (slot) DO UPDATE SET url = excluded.url, pem = excluded.pem, "
                    + "saved_at = excluded.saved_at",
                cached: true,
                certificate.slot,
                certificate.url,
                certificate.pem,
                certificate.savedAt.millisecondsSinceEpoch
            )
        }
        for slot in changes.removeRootCertificates {
            try connection.run("DELETE FROM root_certificates WHERE slot = ?1", cached: true, slot)
        }
        if !changes.events.isEmpty {
            for event in changes.events { try append(event) }
            // Ids only grow by one and only the oldest are deleted, so the newest `eventLimit` entries are
            // those with the top `eventLimit` ids.
            try connection.run(
                "DELETE FROM events WHERE id <= (SELECT max(id) FROM events) - ?1",
                cached: true,
                eventLimit
            )
        }
    }

    /// Clears everything but the identity, in one transaction, then logs `event` (spec §9): saved files,
    /// parameters, local edits, timers, file status, the file key, root certificates, the event log; boot count 0.
    /// Deleted content is overwritten with zeros (secure_delete), so a reset image can be handed on.
    ///
    /// - Throws: `readOnly`, `locked`, `io`, `corrupt`.
    public func factoryReset(event: LogEntry) throws(FlashError) {
        try requireWritable()
        try connection.transaction(.immediate) { () throws(FlashError) in
            try connection.execute(
                "DELETE FROM saved_files; DELETE FROM parameters; DELETE FROM local_edits; DELETE FROM timers; "
                    + "DELETE FROM file_status; DELETE FROM file_key; DELETE FROM root_certificates; "
                    + "DELETE FROM events;"
            )
            try setBootCount(0)
            try append(event)
        }
    }

    private func setBootCount(_ count: Int) throws(FlashError) {
        try connection.run(
            "INSERT INTO state (id, boot_count) VALUES (1, ?1) ON CONFLICT (id) DO UPDATE SET boot_count = ?1",
            cached: true,
            count
        )
    }

    private func append(_ event: LogEntry) throws(FlashError) {
        try connection.run(
            "INSERT INTO events (at, boot, level, kind, message, fields) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            cached: true,
            event.at.millisecondsSinceEpoch,
            event.boot,
            event.level.rawValue,
            event.kind,
            event.message,
            EventFields.encode(event.fields)
        )
    }
}
