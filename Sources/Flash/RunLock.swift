#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One running phone (or fleet) per flash file: an advisory `flock` held for the whole run.
///
/// Two `vphone boot` on one image would interleave two phones' states in it (boot counts, saved files, timers);
/// two fleets on one store, every phone's. Commands that only read or edit an image (`vphone config set`, `events`,
/// `flash extract`) take no run lock and keep working beside a running phone: `flock` is independent of the
/// `fcntl` locks SQLite uses for its transactions. The lock goes with the process, so a crash leaves none behind.
///
/// ```swift
/// let lock = try RunLock(path: "phone.flash", holder: "a phone", alternative: "boot a copy with --snapshot")
/// defer { lock.release() }
/// ```
public final class RunLock {
    private var fd: Int32

    /// - Throws: `locked` when another process holds the run lock of `path` (`holder` says what this one is,
    ///   `alternative` what to do instead of waiting), `io` when the file cannot be opened.
    public init(path: String, holder: String, alternative: String) throws(FlashError) {
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FlashError.io(path, ImageFile.describe(errno)) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            close(fd)
            if code == EWOULDBLOCK {
                throw FlashError(
                    kind: .locked,
                    path: path,
                    message: "\(path) is in use by another running vphone (\(holder) cannot share it): stop that one "
                        + "first, or \(alternative); reading and editing it (events, config set, flash extract) work "
                        + "beside it"
                )
            }
            throw FlashError.io(path, "cannot lock it: \(ImageFile.describe(code))")
        }
    }

    /// Releases the lock (also done when the object goes, or the process ends).
    public func release() {
        guard fd >= 0 else { return }
        close(fd)
        fd = -1
    }

    deinit { release() }
}
