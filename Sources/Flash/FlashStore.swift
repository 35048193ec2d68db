import Foundation
import PhoneCore

/// One phone's flash: a single SQLite file (the "flash image") holding its identity, saved files, effective
/// parameters, local edits, timers, last per-file outcomes, the file key, root certificates and event log
/// (ARCHITECTURE rule 5).
///
/// Every change is one transaction, so a crash at any instant leaves the old state or the new one (spec §6).
/// Not `Sendable`: one phone runtime owns a store at a time. Another process (say `vphone config set`) may
/// open the same file; writers then wait for each other up to 5 s.
///
/// ```swift
/// let store = try FlashStore.openOrCreate(at: "Storage/0080F0C571EB.flash", identity: identity)
/// var snapshot = try store.load()
/// var changes = FlashChanges()
/// changes.bootCount = snapshot.bootCount + 1
/// try store.apply(changes)
/// store.close()
/// ```
public final class FlashStore {
    /// The schema this vphone writes and reads, stored in `PRAGMA user_version`.
    public static let schemaVersion = 2
    /// 'VPHN', stored in `PRAGMA application_id`, so a foreign SQLite database is refused.
    public static let applicationID: Int32 = 0x5650_484E
    /// The event log keeps the newest entries up to this many; older ones are trimmed inside `apply`.
    public static let maxEvents = 10_000

    /// The image file.
    public let path: String
    let connection: SQLiteConnection
    let isReadOnly: Bool
    /// `maxEvents`, lowered by tests.
    var eventLimit = FlashStore.maxEvents
    /// `PRAGMA data_version` when `changedElsewhere` last looked (nil: not yet): another connection's commit
    /// changes it, this connection's own do not.
    private var seenDataVersion: Int64?

    private init(connection: SQLiteConnection, readOnly: Bool) {
        self.path = connection.path
        self.connection = connection
        self.isReadOnly = readOnly
    }

    deinit { connection.close() }

    /// Whether another process (another connection: `vphone config set` beside a running phone) has written the
    /// image since this was last asked; the first call only takes note. One `PRAGMA`, no table read.
    public func changedElsewhere() throws(FlashError) -> Bool {
        var version: Int64 = 0
        try connection.query("PRAGMA data_version", table: "(header)", cached: true) { (row) throws(FlashError) in
            version = try row.int64(0)
        }
        defer { seenDataVersion = version }
        return seenDataVersion.map { $0 != version } ?? false
    }

    // MARK: - Opening

    /// Makes a new flash image for `identity`, with boot count 0 and nothing else.
    ///
    /// The file is created with mode 0600, its parent directory if missing.
    /// - Throws: `alreadyExists` if there is a file at `path` (never overwritten), `io` if it cannot be made.
    public static func create(at path: String, identity: Identity) throws(FlashError) -> FlashStore {
        try create(at: path, identity: identity, applying: FlashChanges())
    }

    /// Makes a new flash image for `identity` already holding `changes` (applied to the fresh image as by
    /// `apply`), in the same transaction: the image appears whole, or not at all. `vphone flash import` and
    /// `from-config` make their images this way.
    ///
    /// ```swift
    /// var changes = FlashChanges()
    /// changes.bootCount = 1
    /// changes.savedFiles = [SavedFile(kind: .standard, url: "file://Config.cfg", body: bytes, savedAt: now)]
    /// let store = try FlashStore.create(at: "copy.flash", identity: identity, applying: changes)
    /// ```
    /// - Throws: `alreadyExists` if there is a file at `path` (never overwritten), `io` if it cannot be made or
    ///   `changes` holds a value the schema refuses (a root certificate slot outside 1...3); no file is left behind.
    public static func create(
        at path: String,
        identity: Identity,
        applying changes: FlashChanges
    ) throws(FlashError) -> FlashStore {
        // The image is built under a private name beside its final one and linked into place only when whole:
        // a crash or kill while creating leaves no empty or half-made image at `path` (which would brick the phone:
        // the next boot must refuse it), only a stray `.NAME.new-*` file.
        if ImageFile.exists(path) { throw ImageFile.alreadyExists(path) }
        let temporary = ImageFile.temporarySibling(of: path)
        var made: SQLiteConnection?
        do {
            try ImageFile.createExclusive(temporary)
            let connection = try SQLiteConnection(path: temporary, mode: .readWrite)
            made = connection
            try configureReading(connection)
            try configureWriting(connection)
            let store = FlashStore(connection: connection, readOnly: false)
            try connection.transaction(.immediate) { () throws(FlashError) in
                try connection.execute(schemaV1)
                try connection.run(
                    "INSERT INTO identity (id, mac, model, firmware, created_at) VALUES (1, ?, ?, ?, ?)",
                    identity.mac.upper,
                    identity.model,
                    identity.firmware,
                    identity.createdAt.millisecondsSinceEpoch
                )
                try connection.run("INSERT INTO state (id, boot_count) VALUES (1, 0)")
                try store.write(changes)
            }
            connection.close()
            made = nil
            try ImageFile.linkIntoPlace(temporary, path)
        } catch {
            // Never leave a half-made image behind: the next create would refuse it, the next open misread it.
            made?.close()
            ImageFile.remove(temporary)
            // The user asked for `path`: name it, not the private temporary name.
            throw FlashError(
                kind: error.kind,
                path: path,
                message: error.message.replacingOccurrences(of: temporary, with: path)
            )
        }
        return try open(at: path)
    }

    /// Opens an existing flash image. Never creates, recreates or resets one.
    ///
    /// - Throws: `notFound` (no file), `notSQLite` (empty, random bytes), `notAnImage` (an SQLite database
    ///   without vphone's application_id), `newerSchema` / `olderSchema`, `corrupt` (truncated, damaged, tables
    ///   missing), `locked`, `io`.
    public static func open(at path: String, readOnly: Bool = false) throws(FlashError) -> FlashStore {
        try ImageFile.checkPlausibleImage(path)
        if readOnly { recoverInterruptedWrite(path) }
        let connection = try SQLiteConnection(path: path, mode: readOnly ? .readOnly : .readWrite)
        do {
            try configureReading(connection)
            let version = try checkHeader(connection)
            if !readOnly {
                try configureWriting(connection)
                if version < schemaVersion { try migrate(connection) }
            }
        } catch {
            connection.close()
            throw error
        }
        return FlashStore(connection: connection, readOnly: readOnly)
    }

    /// A write cut off by a crash leaves a hot journal beside the image; only a writer can roll it back, and until then
    /// a read-only connection cannot read the image at all. Reading after a crash (`vphone config show`, `flash
    /// info`) must work, so a reader first lets a short-lived writer roll the interrupted write back: the image is
    /// then the old state, whole, exactly as the next boot would see it.
    private static func recoverInterruptedWrite(_ path: String) {
        var st = stat()
        guard stat(path + "-journal", &st) == 0, st.st_size > 0, access(path, W_OK) == 0 else { return }
        guard let writer = try? SQLiteConnection(path: path, mode: .readWrite) else { return }
        defer { writer.close() }
        try? configureReading(writer)
        try? writer.execute("SELECT count(*) FROM sqlite_master")
    }

    /// Opens the image at `path` if there is one, else creates it for `identity`.
    ///
    /// - Throws: `macMismatch` if the image there belongs to another MAC; any error of `open` or `create`.
    public static func openOrCreate(at path: String, identity: Identity) throws(FlashError) -> FlashStore {
        let store: FlashStore
        do {
            store = try open(at: path)
        } catch let error where error.kind == .notFound {
            do {
                return try create(at: path, identity: identity)
            } catch let error where error.kind == .alreadyExists {
                store = try open(at: path)  // another process created it in between
            }
        }
        let mac = try store.readIdentity().mac
        guard mac == identity.mac else {
            store.close()
            throw FlashError(
                kind: .macMismatch,
                path: path,
                message: "flash image \(path) belongs to the phone \(mac), not \(identity.mac): use this phone's "
                    + "own image, or another path for a new one"
            )
        }
        return store
    }

    /// Closes the file. The store throws `io` ("closed") if used afterwards. Idempotent.
    public func close() { connection.close() }

    // MARK: - Checking

    /// Runs SQLite's full consistency check of the image (reads every page).
    ///
    /// - Throws: `corrupt` with the first problems SQLite found.
    public func integrityCheck() throws(FlashError) {
        var problems: [String] = []
        try connection.query("PRAGMA integrity_check(10)", table: "(integrity_check)") { (row) throws(FlashError) in
            problems.append(try row.text(0))
        }
        guard problems == ["ok"] else {
            throw FlashError.corrupt(path, problems.prefix(5).joined(separator: "; "))
        }
    }

    func requireWritable() throws(FlashError) {
        guard !isReadOnly else {
            throw FlashError(
                kind: .readOnly,
                path: path,
                message: "flash image \(path) was opened read-only: open it for writing to change it"
            )
        }
    }
}
