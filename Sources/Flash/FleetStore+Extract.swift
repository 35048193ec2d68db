import PhoneCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension FleetStore {
    // MARK: - Extracting one phone

    /// Writes one phone's flash, with its event log, as a normal single-phone flash image, so a phone that failed
    /// in a load test can be booted, inspected or replayed alone (`vphone flash extract`).
    ///
    /// Pending changes are flushed first: the image holds everything the phone has applied. The image is made in
    /// one transaction (`FlashStore.create(at:identity:applying:)`): it appears whole or not at all.
    ///
    /// ```swift
    /// try store.extract(mac: MAC("0080F0C571EB")!, to: "failed-phone.flash")
    /// ```
    /// - Throws: `alreadyExists` (an existing `imagePath` is never overwritten), `notFound` (no phone with this MAC
    ///   in the store), the errors of `flush()`, `corrupt`, `io`.
    public func extract(mac: MAC, to imagePath: String) throws(FlashError) {
        var info = stat()
        if lstat(imagePath, &info) == 0 {
            throw FlashError(
                kind: .alreadyExists,
                path: imagePath,
                message: "\(imagePath) already exists: flash extract makes a new image and never overwrites one; "
                    + "move it away or choose another --to"
            )
        }
        try flush()
        let (snapshot, events) = try withDatabase { () throws(FlashError) in
            guard locked({ stored.contains(mac.value) }) else {
                throw Self.unknownPhone(mac, path: path, count: locked { stored.count })
            }
            return (try readPhone(mac), try readEvents(mac, boot: nil, limit: nil))
        }
        var changes = FlashChanges()
        changes.bootCount = snapshot.bootCount
        changes.savedFiles = FileKind.allCases.compactMap { snapshot.savedFiles[$0] }
        changes.parameters = snapshot.parameters
        changes.setLocalEdits = snapshot.localEdits.keys.sorted().compactMap { snapshot.localEdits[$0] }
        changes.armTimers = snapshot.timers
        changes.fileStatus = FileKind.allCases.compactMap { snapshot.fileStatus[$0] }
        changes.fileKey = snapshot.fileKey.map { KeyChange.install($0) }
        changes.rootCertificates = snapshot.rootCertificates.keys.sorted().compactMap { snapshot.rootCertificates[$0] }
        changes.events = events
        try FlashStore.create(at: imagePath, identity: snapshot.identity, applying: changes).close()
    }
}
