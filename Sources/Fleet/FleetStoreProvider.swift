import Flash
import PhoneCore

/// Every phone's flash in one fleet store (`vphone fleet --store PATH`), written in batches.
public final class FleetStoreProvider: FleetFlashProvider {
    public let store: FleetStore

    public init(path: String) throws(FlashError) {
        store = try FleetStore.openOrCreate(at: path)
    }

    public func flash(for identity: Identity) throws(FlashError) -> any FlashBackend {
        try store.phone(identity)
    }

    public func flush() throws(FlashError) {
        try store.flush()
    }
}
