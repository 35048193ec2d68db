import Flash
import PhoneCore

extension FlashStore {
    /// A factory-fresh flash image at `path` for a phone of `profile` with this MAC (12 hex digits), as `vphone boot`
    /// makes on first power-on.
    public static func factoryFresh(
        at path: String,
        mac: String,
        profile: DeviceProfile,
        now: PhoneTime
    ) throws
        -> FlashStore
    {
        guard let address = MAC(mac) else { preconditionFailure("not a MAC: \(mac)") }
        return try FlashStore.create(
            at: path,
            identity: Identity(mac: address, profile: profile, createdAt: now)
        )
    }
}
