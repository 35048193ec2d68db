import PhoneCore
import Synchronization

/// The flash of a whole fleet (`vphone fleet --store PATH`): one SQLite file holding every phone's flash, in the
/// tables of a flash image keyed by MAC as well (Storage/README.md, "Fleet stores").
///
/// Writes are batched: a phone's `apply` only records its changes in memory (it never waits for the disk), and a
/// background thread commits everything pending, for every phone, in one transaction every `batchInterval`, and on
/// `flush()` and `close()`. A batch is one transaction, so after a crash or power loss each phone's flash is a
/// prefix of its changes: its state at the end of some batch, whole. Per phone, memory holds only its changes not
/// yet written: no snapshot (the phone's machine holds one already) and no event log. `load()` reads the phone's
/// rows and applies its pending changes; it is meant for a phone's start, not for every event.
///
/// Thread-safe: the phones of a fleet call it from many tasks at once. One process per store.
///
/// ```swift
/// let store = try FleetStore.openOrCreate(at: "fleet.db")
/// let flash = try store.phone(identity)          // a new MAC starts factory-fresh
/// var changes = FlashChanges()
/// changes.bootCount = try flash.load().bootCount + 1
/// try flash.apply(changes)                        // written by the next batch
/// try store.flush()                               // ... or now
/// try store.extract(mac: identity.mac, to: "phone.flash")
/// store.close()
/// ```
public final class FleetStore: @unchecked Sendable {
    /// The schema this vphone writes and reads, stored in `PRAGMA user_version`.
    public static let schemaVersion = 2
    /// 'VPHF', stored in `PRAGMA application_id`: a fleet store, not a single image ('VPHN') nor a foreign file.
    public static let applicationID: Int32 = 0x5650_4846
    /// Each phone's event log keeps its newest entries up to this many (a single image keeps 10,000): at 10,000
    /// phones that bounds the log to 10 million rows, about 1.5 GB.
    public static let maxEventsPerPhone = 1_000
    /// How often pending changes are committed, by default.
    public static let defaultBatchInterval: Duration = .milliseconds(100)
    /// The page cache of the store's one connection.
    static let cacheKibibytes = 8_192

    /// What the store has done so far, for reports and tests.
    public struct Statistics: Sendable, Equatable {
        /// Transactions committed by batches (background, `flush()`, `close()`).
        public var batches = 0
        /// Batches that failed and were rolled back; their changes stay pending and go with the next batch.
        public var failedBatches = 0
        /// `apply` and `factoryReset` calls accepted.
        public var changesAccepted = 0
        /// Phones written, summed over batches (a phone with several changes in one batch counts once).
        public var phonesWritten = 0
        /// How long the last batch and the longest batch held the database (commit included).
        public var lastBatch: Duration = .zero
        public var longestBatch: Duration = .zero
    }

    /// The store file.
    public let path: String
    /// How often the background thread commits what is pending.
    public let batchInterval: Duration
    let isReadOnly: Bool
    /// `maxEventsPerPhone`, lowered by tests.
    let eventLimit: Int

    // MARK: Under `databaseLock` (taken before `lock` when both are needed, never after)
    private let databaseLock = FleetLock()
    let connection: SQLiteConnection
    private var connectionOpen = true
    /// Called inside a batch's transaction, after its writes, before COMMIT (tests copy the file there).
    var duringBatch: (@Sendable () -> Void)?
    /// The schema of the file: 2, or 1 for a store opened read-only that an older vphone wrote (read as it is).
    var fileSchema = 2
    /// Applied to a phone read back from its rows, before anything keeps it (`vphone fleet` passes the fleet's
    /// `SharedPhoneState.sharing`, so a resumed phone shares its configuration and saved bodies as a new one does).
    /// Set before the first `load`.
    public var sharing: (@Sendable (FlashSnapshot) -> FlashSnapshot)?
    /// Each phone's parameter rows as the file has them, when known (read at its start, or written by a batch):
    /// a batch then writes only the rows that changed. The tables share their storage with the phones' machines.
    var writtenParameters: [UInt64: ParameterTable] = [:]
    /// The tables the batch being written leaves; they become `writtenParameters` when it commits.
    var batchParameters: [UInt64: ParameterTable] = [:]
    /// The `bodies` row of each body the fleet shares that the file has, by `SavedBody.sharedContent`: the next
    /// phone's copy of the same product, master or initial file is neither rebuilt, hashed nor compared again.
    var bodyRows: [ObjectIdentifier: BodyRow] = [:]
    /// The rows the batch being written made or found; they join `bodyRows` when it commits (a batch rolled back
    /// takes the rows it made with it).
    var batchBodyRows: [ObjectIdentifier: BodyRow] = [:]
    /// `PRAGMA data_version` when `bodyRows` was last checked: another connection's commit changes it.
    var bodyRowsDataVersion: Int64?

    // MARK: Under `lock`
    private let lock = FleetLock()
    /// What each phone changed since the last batch, by MAC value.
    private var pending: [UInt64: PendingWrite] = [:]
    /// The phones of the batch being written (taken from `pending`, not yet committed).
    private var inFlight: [UInt64: PendingWrite] = [:]
    /// The phones with rows in the file (committed), by MAC value.
    var stored: Set<UInt64>
    /// The phones with an open `FleetPhoneFlash`: one at a time per MAC.
    private var running: Set<UInt64> = []
    private var closed = false
    private var lastFailure: FlashError?
    private var stats = Statistics()
    /// Phones of the batch being written that it has written so far (for `backlog`; not under `lock`).
    private let batchWritten = Atomic<Int>(0)

    private let batchThread: BatchThread?

    private init(
        connection: SQLiteConnection,
        readOnly: Bool,
        batchInterval: Duration,
        eventLimit: Int
    )
        throws(FlashError)
    {
        self.path = connection.path
        self.connection = connection
        self.isReadOnly = readOnly
        self.batchInterval = batchInterval
        self.eventLimit = eventLimit
        var macs = Set<UInt64>()
        try connection.query("SELECT mac FROM identity", table: "identity") { (row) throws(FlashError) in
            let text = try row.text(0)
            guard let mac = MAC(text) else {
                throw Self.damaged(
                    connection.path,
                    "table identity holds the MAC '\(Row.excerpt(text))', not 12 hex digits"
                )
            }
            macs.insert(mac.value)
        }
        stored = macs
        batchThread = readOnly ? nil : BatchThread(interval: batchInterval)
        // The thread holds the store weakly: a store dropped without close() still goes away (deinit closes it).
        batchThread?.start(name: "vphone-fleetstore") { [weak self] in
            // A failure is kept in `failure` and the changes stay pending: the next tick retries them.
            try? self?.commitPending()
        }
    }

    deinit { close() }

    // MARK: - Opening

    /// Opens the fleet store at `path`, or makes an empty one there (mode 0600, parent directories if missing).
    ///
    /// - Parameter batchInterval: how often pending changes are committed in the background.
    /// - Throws: `notSQLite` (empty, random bytes), `notAnImage` (a single phone's image, another SQLite database),
    ///   `newerSchema` / `olderSchema`, `corrupt`, `locked`, `io`.
    public static func openOrCreate(
        at path: String,
        batchInterval: Duration = defaultBatchInterval
    ) throws(FlashError) -> FleetStore {
        try openOrCreate(at: path, batchInterval: batchInterval, eventLimit: maxEventsPerPhone)
    }

    static func openOrCreate(
        at path: String,
        batchInterval: Duration,
        eventLimit: Int
    ) throws(FlashError)
        -> FleetStore
    {
        do {
            return try open(at: path, readOnly: false, batchInterval: batchInterval, eventLimit: eventLimit)
        } catch let error where error.kind == .notFound {
            do {
                return try create(at: path, batchInterval: batchInterval, eventLimit: eventLimit)
            } catch let error where error.kind == .alreadyExists {
                // Another process made it in between.
                return try open(at: path, readOnly: false, batchInterval: batchInterval, eventLimit: eventLimit)
            }
        }
    }

    /// Opens an existing fleet store; never makes one. `vphone flash extract` opens stores this way.
    ///
    /// A store left by a crash is rolled back to its last whole batch as it opens (unless `readOnly`, when SQLite
    /// cannot, and refuses it as read-only).
    /// - Throws: `notFound`, and the errors of `openOrCreate`.
    public static func open(at path: String, readOnly: Bool = false) throws(FlashError) -> FleetStore {
        try open(at: path, readOnly: readOnly, batchInterval: defaultBatchInterval, eventLimit: maxEventsPerPhone)
    }

    private static func open(
        at path: String,
        readOnly: Bool,
        batchInterval: Duration,
        eventLimit: Int
    )
        throws(FlashError) -> FleetStore
    {
        do {
            try ImageFile.checkPlausibleImage(path)
        } catch let error where error.kind == .notFound {
            throw FlashError(
                kind: .notFound,
                path: path,
                message: "no fleet store at \(path): check the path (vphone fleet --store \(path) makes one)"
            )
        } catch {
            throw saidOfStore(error)
        }
        let connection: SQLiteConnection
        do { connection = try SQLiteConnection(path: path, mode: readOnly ? .readOnly : .readWrite) } catch {
            throw saidOfStore(error)
        }
        do {
            try configureReading(connection)
            var version = try checkHeader(connection)
            if !readOnly {
                try configureWriting(connection)
                if version == 1 {
                    try migrateFromV1(connection)
                    version = 2
                }
            }
            let store = try FleetStore(
                connection: connection,
                readOnly: readOnly,
                batchInterval: batchInterval,
                eventLimit: eventLimit
            )
            store.fileSchema = version
            return store
        } catch {
            connection.close()
            throw saidOfStore(error)
        }
    }

    private static func create(
        at path: String,
        batchInterval: Duration,
        eventLimit: Int
    ) throws(FlashError)
        -> FleetStore
    {
        try ImageFile.createExclusive(path)
        var made: SQLiteConnection?
        do {
            let connection = try SQLiteConnection(path: path, mode: .readWrite)
            made = connection
            try configureReading(connection)
            try configureWriting(connection)
            try connection.transaction(.immediate) { () throws(FlashError) in try connection.execute(schemaV2) }
            return try FleetStore(
                connection: connection,
                readOnly: false,
                batchInterval: batchInterval,
                eventLimit: eventLimit
            )
        } catch {
            // Never leave a half-made store behind: the next open would refuse it.
            made?.close()
            ImageFile.remove(path)
            throw error
        }
    }

    /// The file checks and SQLite speak of "flash image"; a store is not one.
    private static func saidOfStore(_ error: FlashError) -> FlashError {
        guard error.kind == .notSQLite else { return error }
        var said = error
        said.message = said.message.replacing("vphone flash image", with: "vphone fleet store")
        return said
    }

    // MARK: - Phones

    /// The flash of one phone: its saved state if the store has it, else a factory-fresh flash (written with the
    /// next batch). Never touches the disk: the phone's rows are read by its `load()`.
    ///
    /// The identity stored first is kept: a phone's identity never changes (spec §9).
    /// - Throws: `locked` if this MAC's flash is already open (one phone runtime per MAC: close it first),
    ///   `readOnly`, `io` (closed store).
    public func phone(_ identity: Identity) throws(FlashError) -> FleetPhoneFlash {
        let mac = identity.mac.value
        try locked { () throws(FlashError) in
            try requireOpen()
            try requireWritable()
            guard !running.contains(mac) else {
                throw FlashError(
                    kind: .locked,
                    path: path,
                    message: "phone \(identity.mac) is already running on fleet store \(path): one phone runtime "
                        + "per MAC; close its flash before opening it again"
                )
            }
            running.insert(mac)
            // A MAC never seen (the whole fleet, on a new store) starts factory-fresh; the batch makes its rows.
            if !stored.contains(mac), pending[mac] == nil, inFlight[mac] == nil {
                pending[mac] = PendingWrite(create: identity)
            }
        }
        return FleetPhoneFlash(store: self, mac: identity.mac)
    }

    /// Every phone in the store (written, or waiting for the next batch), in MAC order.
    public func macs() throws(FlashError) -> [MAC] {
        try locked { () throws(FlashError) in
            try requireOpen()
            return allMACs().sorted().map { MAC(value: $0) }
        }
    }

    /// How many phones the store holds (written, or waiting for the next batch).
    public func count() throws(FlashError) -> Int {
        try locked { () throws(FlashError) in
            try requireOpen()
            return allMACs().count
        }
    }

    /// The stored phones and those whose rows are pending or being written; under `lock`.
    private func allMACs() -> Set<UInt64> {
        var all = stored
        for (mac, write) in pending where write.create != nil { all.insert(mac) }
        for (mac, write) in inFlight where write.create != nil { all.insert(mac) }
        return all
    }

    /// What the store has done so far.
    public var statistics: Statistics { locked { stats } }

    /// The error of the last batch, if it failed (nil once a batch succeeds). Its changes stay pending and are
    /// retried with the next batch.
    public var failure: FlashError? { locked { lastFailure } }

    // MARK: - Writing

    /// Phones whose changes the store has still to write: those waiting for the next batch, and those of the batch
    /// being written that it has not reached yet (a phone it has written counts as done, though the batch may still
    /// be committing). What a progress line shows while the store catches up after a storm; read without stopping the
    /// batch, so it may lag by a phone or two.
    public var backlog: Int {
        let (waiting, batch) = locked { (pending.count, inFlight.count) }
        return waiting + max(0, batch - batchWritten.load(ordering: .relaxed))
    }

    /// Commits everything pending, now, in one transaction; returns when it is on disk.
    ///
    /// - Throws: the batch's error (`io` for a full disk, `locked`...): nothing of it was written, and it stays
    ///   pending for the next batch; `io` if the store is closed.
    public func flush() throws(FlashError) {
        guard !isReadOnly else { return }
        try commitPending()
    }

    /// Stops the background batches, commits what is pending and closes the file. Idempotent; the store and its
    /// phones throw `io` ("closed") if used afterwards. Call `flush()` first to learn whether the last batch failed.
    public func close() {
        let first = locked { () -> Bool in
            defer { closed = true }
            return !closed
        }
        guard first else { return }
        batchThread?.stop()
        databaseLock.lock()
        defer { databaseLock.unlock() }
        if !isReadOnly {
            // The error is kept in `failure`; close cannot throw (FlashBackend), flush() before close reports it.
            _ = try? commitLocked()
            // Bodies that replaced or reset phones no longer use; kept until now, a crash only delays this.
            _ = try? Self.deleteUnusedBodies(connection)
        }
        connection.close()
        connectionOpen = false
    }

    /// Takes everything pending and writes it in one transaction; on failure puts it back, ahead of what came since.
    private func commitPending() throws(FlashError) {
        databaseLock.lock()
        defer { databaseLock.unlock() }
        guard connectionOpen else { throw Self.closedError(path) }
        try commitLocked()
    }

    /// The body of a batch; the caller holds `databaseLock`.
    private func commitLocked() throws(FlashError) {
        let batch = locked { () -> [UInt64: PendingWrite] in
            defer {
                inFlight = pending
                pending = [:]
                batchWritten.store(0, ordering: .relaxed)
            }
            return pending
        }
        guard !batch.isEmpty else { return }
        batchParameters = [:]
        batchBodyRows = [:]
        let started = ContinuousClock.now
        let hook = duringBatch
        do {
            try connection.transaction(.immediate) { () throws(FlashError) in
                try self.forgetBodyRowsIfAnotherConnectionWrote()
                // In MAC order: each phone's rows are neighbours in every table, so the batch touches fewer pages.
                for (mac, write) in batch.sorted(by: { $0.key < $1.key }) {
                    try self.write(write, for: MAC(value: mac))
                    batchWritten.add(1, ordering: .relaxed)
                }
                hook?()
            }
        } catch {
            locked {
                inFlight = [:]
                for (mac, older) in batch {
                    var merged = older
                    if let newer = pending[mac] { merged.append(newer, eventLimit: eventLimit) }
                    pending[mac] = merged
                }
                lastFailure = error
                stats.failedBatches += 1
            }
            throw error
        }
        let elapsed = ContinuousClock.now - started
        writtenParameters.merge(batchParameters) { _, new in new }
        batchParameters = [:]
        // Entries whose body is gone can no longer answer: dropped here, so the memory does not grow with them.
        bodyRows = bodyRows.merging(batchBodyRows) { _, new in new }.filter { $0.value.content != nil }
        batchBodyRows = [:]
        locked {
            inFlight = [:]
            for (mac, write) in batch where write.create != nil { stored.insert(mac) }
            lastFailure = nil
            stats.batches += 1
            stats.phonesWritten += batch.count
            stats.lastBatch = elapsed
            stats.longestBatch = max(stats.longestBatch, elapsed)
        }
    }

    /// Records a phone's change for the next batch.
    func accept(_ write: PendingWrite, for mac: MAC) throws(FlashError) {
        try locked { () throws(FlashError) in
            try requireOpen()
            pending[mac.value, default: PendingWrite()].append(write, eventLimit: eventLimit)
            stats.changesAccepted += 1
        }
    }

    /// The phone's flash was closed: the MAC may be opened again (its pending changes still go with the next batch).
    func release(_ mac: MAC) {
        locked { _ = running.remove(mac.value) }
    }

    // MARK: - Reading one phone

    /// The phone's flash as it will be once its pending changes are written: its rows, then its pending changes.
    ///
    /// A phone without rows yet (new, its first batch pending or being written) is answered from memory at once;
    /// one with rows reads them, after the batch being written, if any.
    func load(_ mac: MAC) throws(FlashError) -> FlashSnapshot {
        let fresh = try locked { () throws(FlashError) -> FlashSnapshot? in
            try requireOpen()
            // `stored`, `inFlight` and `pending` change together under `lock`: a phone is either stored, or wholly
            // in the batch being written and what is pending since.
            guard !stored.contains(mac.value),
                let identity = inFlight[mac.value]?.create ?? pending[mac.value]?.create
            else { return nil }
            var snapshot = FlashSnapshot(identity: identity)
            if let write = inFlight[mac.value] { snapshot = write.applied(to: snapshot) }
            if let write = pending[mac.value] { snapshot = write.applied(to: snapshot) }
            return snapshot
        }
        if let fresh { return fresh }
        return try withDatabase { () throws(FlashError) in
            // Under databaseLock no batch runs, so every change is either in the rows or pending, never both.
            let (isStored, write) = locked { (stored.contains(mac.value), pending[mac.value]) }
            var snapshot: FlashSnapshot
            if isStored {
                snapshot = try readPhone(mac)
                if let sharing { snapshot = sharing(snapshot) }
                writtenParameters[mac.value] = snapshot.parameters
            } else if let identity = write?.create {
                snapshot = FlashSnapshot(identity: identity)
            } else {
                throw Self.unknownPhone(mac, path: path, count: locked { stored.count })
            }
            if let write { snapshot = write.applied(to: snapshot) }
            return snapshot
        }
    }

    /// The phone's event log as it will be once its pending changes are written (trimmed as a batch trims it).
    func events(_ mac: MAC, boot: Int?, limit: Int?) throws(FlashError) -> [LogEntry] {
        try withDatabase { () throws(FlashError) in
            let (isStored, write) = locked { (stored.contains(mac.value), pending[mac.value]) }
            var newer: [LogEntry] = []
            if let reset = write?.reset { newer.append(reset) }
            newer += write?.events.entries ?? []
            newer = Array(newer.suffix(eventLimit))
            var older: [LogEntry] = []
            if isStored, write?.reset == nil {
                // The rows a batch would keep: the newest (eventLimit - pending) by seq.
                let keep = eventLimit - newer.count
                if keep > 0 { older = try readEvents(mac, boot: boot, limit: limit, newestOfAll: keep) }
            }
            var out = older + newer.filter { boot == nil || $0.boot == boot }
            if let limit, out.count > limit { out = Array(out.suffix(max(0, limit))) }
            return out
        }
    }

    /// Runs `body` with the connection, no batch running.
    func withDatabase<R>(_ body: () throws(FlashError) -> R) throws(FlashError) -> R {
        databaseLock.lock()
        defer { databaseLock.unlock() }
        guard connectionOpen else { throw Self.closedError(path) }
        return try body()
    }

    // MARK: - Helpers

    func locked<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    /// Under `lock`.
    private func requireOpen() throws(FlashError) {
        guard !closed else { throw Self.closedError(path) }
    }

    private func requireWritable() throws(FlashError) {
        guard !isReadOnly else {
            throw FlashError(
                kind: .readOnly,
                path: path,
                message: "fleet store \(path) was opened read-only: open it for writing to run phones on it"
            )
        }
    }

    static func closedError(_ path: String) -> FlashError {
        FlashError(kind: .io, path: path, message: "fleet store \(path) is closed: open it again before using it")
    }

    static func unknownPhone(_ mac: MAC, path: String, count: Int) -> FlashError {
        FlashError(
            kind: .notFound,
            path: path,
            message: "fleet store \(path) has no phone \(mac) (it holds \(count) phone\(count == 1 ? "" : "s")): "
                + "check the MAC; sqlite3 -readonly \(path) 'SELECT mac FROM identity' lists them"
        )
    }
}
