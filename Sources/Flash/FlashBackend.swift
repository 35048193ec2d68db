import PhoneCore

/// What a phone runtime needs of its flash: one phone's image file (`FlashStore`), one phone's rows in a fleet
/// store, or memory alone.
public protocol FlashBackend: AnyObject {
    func load() throws(FlashError) -> FlashSnapshot
    /// Applies `changes` as one transaction (or, for a fleet store, as part of one batch).
    func apply(_ changes: FlashChanges) throws(FlashError)
    func events(boot: Int?, limit: Int?) throws(FlashError) -> [LogEntry]
    func factoryReset(event: LogEntry) throws(FlashError)
    func close()
    /// Whether something else wrote this flash since the last call (an image file another process edits); the
    /// first call only takes note. False for a flash nothing else can write.
    func changedElsewhere() throws(FlashError) -> Bool
}

extension FlashBackend {
    public func changedElsewhere() throws(FlashError) -> Bool { false }
}

extension FlashStore: FlashBackend {}

/// A flash that lives in memory only (fleet runs without `--store`): it keeps the snapshot and the newest events.
public final class MemoryFlash: FlashBackend {
    private var snapshot: FlashSnapshot
    private var log: [LogEntry] = []
    private let keepEvents: Int
    private let retain: Bool

    /// - Parameters:
    ///   - keepEvents: how many of the newest events to keep (0: none, the cheapest for big fleets).
    ///   - retain: keep applying changes to the snapshot. A fleet turns this off: the phone's machine already holds
    ///     its state in memory, and a second copy per phone would double the memory of a 10,000-phone run.
    public init(_ snapshot: FlashSnapshot, keepEvents: Int = 0, retain: Bool = true) {
        self.snapshot = snapshot
        self.keepEvents = keepEvents
        self.retain = retain
    }

    public func load() throws(FlashError) -> FlashSnapshot { snapshot }

    public func apply(_ changes: FlashChanges) throws(FlashError) {
        if retain { snapshot.apply(changes) }
        guard keepEvents > 0 else { return }
        log += changes.events
        if log.count > keepEvents { log.removeFirst(log.count - keepEvents) }
    }

    public func events(boot: Int?, limit: Int?) throws(FlashError) -> [LogEntry] {
        var out = boot.map { b in log.filter { $0.boot == b } } ?? log
        if let limit, out.count > limit { out = Array(out.suffix(limit)) }
        return out
    }

    public func factoryReset(event: LogEntry) throws(FlashError) {
        snapshot = FlashSnapshot(identity: snapshot.identity)
        log = keepEvents > 0 ? [event] : []
    }

    public func close() {}
}
