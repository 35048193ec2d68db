import Flash
import PhoneCore

/// Every phone's flash in one fleet store (`vphone fleet --store PATH`), written in batches.
public final class FleetStoreProvider: FleetFlashProvider {
    public let store: FleetStore

    /// - Parameter sharing: the fleet's shared state (`PreparedProfile.shared`): phones read back from the store
    ///   share their configuration and saved bodies through it, as the fleet's new phones do.
    public init(path: String, sharing: SharedPhoneState? = nil) throws(FlashError) {
        store = try FleetStore.openOrCreate(at: path)
        if let sharing { store.sharing = { sharing.sharing($0) } }
    }

    public func flash(for identity: Identity) throws(FlashError) -> any FlashBackend {
        try store.phone(identity)
    }

    public func flush() throws(FlashError) {
        try store.flush()
    }

    public var backlog: Int { store.backlog }
}
