import PhoneCore

/// One phone's flash in a fleet store: what `FleetStore.phone(_:)` returns, and what the phone runtime runs on.
///
/// `apply` and `factoryReset` never wait for the disk: they record the change, and the store's next batch writes
/// it (with every other phone's) in one transaction. `load` and `events` read the phone's rows and add its pending
/// changes: what the rows will hold after the next batch.
/// Like `FlashStore`, owned by one phone runtime at a time (not `Sendable`); the store it belongs to is
/// thread-safe, so many phones run at once.
///
/// ```swift
/// let flash = try store.phone(identity)
/// let snapshot = try flash.load()
/// try flash.apply(changes)      // written by the next batch
/// flash.close()
/// ```
public final class FleetPhoneFlash: FlashBackend {
    /// The store this phone's flash lives in.
    public let store: FleetStore
    public let mac: MAC
    private var isClosed = false

    init(store: FleetStore, mac: MAC) {
        self.store = store
        self.mac = mac
    }

    deinit { close() }

    /// The phone's flash with its pending changes applied: exactly what the rows will hold after the next batch.
    ///
    /// A new phone (no rows yet) is answered from memory; a stored one reads its rows, after the batch being
    /// written if there is one (up to a second or two for 10,000 phones): load at a phone's start, not per event.
    /// - Throws: `corrupt` (a row this vphone cannot read), `io` (this flash or its store is closed).
    public func load() throws(FlashError) -> FlashSnapshot {
        try requireOpen()
        return try store.load(mac)
    }

    /// Records `changes` for the next batch, which writes them with every other pending change in one transaction:
    /// after a crash the phone holds all of them or none (spec §6), and everything before them.
    ///
    /// A failing batch does not make this throw: its changes stay pending and are retried with the next batch, and
    /// the store's `failure` and `flush()` report the error.
    /// - Throws: `io` for what the schema would refuse (a root certificate slot outside 1...3, a negative boot
    ///   count: nothing is recorded) and for a closed flash or store.
    public func apply(_ changes: FlashChanges) throws(FlashError) {
        try requireOpen()
        guard !changes.isEmpty else { return }
        try FleetStore.validate(changes, mac: mac, path: store.path)
        try store.accept(PendingWrite(changes: changes), for: mac)
    }

    /// The phone's event log, oldest first, with its pending entries (newest `FleetStore.maxEventsPerPhone`).
    ///
    /// - Parameters:
    ///   - boot: only the entries of this power-on.
    ///   - limit: only the newest `limit` entries (of that boot, if given).
    public func events(boot: Int? = nil, limit: Int? = nil) throws(FlashError) -> [LogEntry] {
        try requireOpen()
        return try store.events(mac, boot: boot, limit: limit)
    }

    /// Clears everything but the identity and logs `event` (spec §9), with the next batch; `load` sees it at once.
    public func factoryReset(event: LogEntry) throws(FlashError) {
        try requireOpen()
        try store.accept(PendingWrite(reset: event), for: mac)
    }

    /// Lets go of the phone: its MAC may be opened again. Pending changes still go with the next batch. Idempotent.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        store.release(mac)
    }

    private func requireOpen() throws(FlashError) {
        guard !isClosed else {
            throw FlashError(
                kind: .io,
                path: store.path,
                message: "the flash of phone \(mac) in fleet store \(store.path) is closed: open it again with "
                    + "FleetStore.phone(_:)"
            )
        }
    }
}
