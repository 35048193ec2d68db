#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// The fleet store's locks and its batch thread, on pthreads: the Flash module does without Foundation's (it uses
// FoundationEssentials only), and a batch blocks on fsync, which must not happen on a Swift concurrency thread.

/// A mutex. Its `pthread_mutex_t` lives at a fixed address, as pthreads requires.
final class FleetLock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)

    init() {
        // Default attributes: pthread_mutex_init cannot fail with them.
        _ = pthread_mutex_init(mutex, nil)
    }

    deinit {
        _ = pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func lock() { _ = pthread_mutex_lock(mutex) }
    func unlock() { _ = pthread_mutex_unlock(mutex) }

    func withLock<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        lock()
        defer { unlock() }
        return try body()
    }
}

/// Runs `body` on a thread of its own, every `interval`, until stopped.
final class BatchThread: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private let intervalNanoseconds: Int64
    private var stopped = false

    init(interval: Duration) {
        let (seconds, attoseconds) = interval.components
        intervalNanoseconds = max(1_000_000, seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        _ = pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        _ = pthread_condattr_init(&attributes)
        #if os(Linux)
        // Ticks follow the monotonic clock: setting the wall clock must not stall or rush the batches.
        _ = pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        #endif
        _ = pthread_cond_init(condition, &attributes)
        _ = pthread_condattr_destroy(&attributes)
    }

    deinit {
        _ = pthread_cond_destroy(condition)
        _ = pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    /// Starts the thread, named `name`; it calls `body` after each interval until `stop()`.
    func start(name: String, _ body: @escaping @Sendable () -> Void) {
        let context = Unmanaged.passRetained(Context(thread: self, name: name, body: body)).toOpaque()
        #if canImport(Darwin)
        var thread: pthread_t? = nil
        #else
        var thread = pthread_t()
        #endif
        let rc = pthread_create(
            &thread,
            nil,
            { raw in
                #if canImport(Darwin)
                let raw: UnsafeMutableRawPointer? = raw
                #endif
                guard let raw else { return nil }
                let context = Unmanaged<Context>.fromOpaque(raw).takeRetainedValue()
                context.run()
                return nil
            },
            context
        )
        #if canImport(Darwin)
        let started = rc == 0 ? thread : nil
        #else
        let started: pthread_t? = rc == 0 ? thread : nil
        #endif
        if let started {
            _ = pthread_detach(started)
        } else {
            // No thread (out of resources): batches then happen only on flush() and close().
            Unmanaged<Context>.fromOpaque(context).release()
        }
    }

    func stop() {
        pthread_mutex_lock(mutex)
        stopped = true
        pthread_cond_signal(condition)
        pthread_mutex_unlock(mutex)
    }

    /// Sleeps one interval; false once stopped.
    fileprivate func waitForTick() -> Bool {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        guard !stopped else { return false }
        var now = timespec()
        #if os(Linux)
        clock_gettime(CLOCK_MONOTONIC, &now)
        #else
        clock_gettime(CLOCK_REALTIME, &now)
        #endif
        let total = Int64(now.tv_nsec) + intervalNanoseconds
        var deadline = now
        deadline.tv_sec += Int(total / 1_000_000_000)
        deadline.tv_nsec = Int(total % 1_000_000_000)
        // Wakes at the deadline (ETIMEDOUT), on stop(), or spuriously: any of them is a tick.
        _ = pthread_cond_timedwait(condition, mutex, &deadline)
        return !stopped
    }

    private final class Context {
        let thread: BatchThread
        let name: String
        let body: @Sendable () -> Void

        init(thread: BatchThread, name: String, body: @escaping @Sendable () -> Void) {
            self.thread = thread
            self.name = name
            self.body = body
        }

        func run() {
            #if os(Linux)
            // Glibc's module lacks pthread_setname_np; the kernel takes the name here (for top -H, perf, gdb).
            if let comm = fopen("/proc/thread-self/comm", "w") {
                fputs(name, comm)
                fclose(comm)
            }
            #endif
            while thread.waitForTick() { body() }
        }
    }
}
