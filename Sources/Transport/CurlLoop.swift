// One event loop: a thread owning a CURLM, fed through a locked inbox and `curl_multi_wakeup`.

import CCurl
import Foundation
import Synchronization

/// A thread that runs transfers on its own multi handle.
///
/// Everything below `// MARK: - Loop thread only` is touched by the loop thread alone; the inbox and
/// the stop flag are shared under `lock`. The multi handle itself lives until `deinit`, so a
/// `curl_multi_wakeup` from another thread can never reach a freed handle.
final class CurlLoop: @unchecked Sendable {
    /// A class: a job passes through the inbox, the queue and its transfer, and a struct copy of its request
    /// retained and released each of the request's dozen strings at every hop.
    final class Job: Sendable {
        let request: FetchRequest
        let completion: @Sendable (Result<FetchResponse, FetchFailure>) -> Void

        init(request: FetchRequest, completion: @escaping @Sendable (Result<FetchResponse, FetchFailure>) -> Void) {
            self.request = request
            self.completion = completion
        }
    }

    /// How long `curl_multi_poll` may sleep with nothing to do; bounds the delay if a wakeup is lost.
    private static let idlePollMs: Int32 = 1000
    /// Idle connection groups kept per loop (each holds its idle connections open); the least
    /// recently used idle ones are freed beyond this.
    static let maxIdleGroups = 1024

    let index: Int
    private let multi: UnsafeMutableRawPointer
    private let maxInFlight: Int
    private let systemCAPath: String
    private let trust: TrustFiles

    // MARK: - Shared, under `lock`
    private let lock = NSLock()
    private var inbox: [Job] = []
    /// Swift jobs of actors that run on this loop (`LoopExecutor`), run between libcurl's turns.
    private var jobs: [UnownedJob] = []
    /// Set once the thread has left its loop: later jobs run on `fallback` instead.
    private var finished = false
    private var stopping = false
    private let stopped = DispatchSemaphore(value: 0)
    private var joined = false
    private var sharedPeakInFlight = 0

    /// The loop thread's id (0 until it starts), to tell it apart without taking the lock.
    private let threadID = Atomic<UInt>(0)
    /// Nanoseconds the loop has slept in `curl_multi_poll` with every place taken and transfers waiting for one: time
    /// in which only a higher `maxInFlight` could have asked the server for more.
    private let idleAtCapNs = Atomic<UInt64>(0)
    /// Runs the jobs that arrive after the loop has stopped (an actor shutting its phone down after the
    /// transport), one at a time as a serial executor must.
    private let fallback: DispatchQueue

    // MARK: - Loop thread only
    private var spareInbox: [Job] = []
    private var spareJobs: [UnownedJob] = []
    /// True while the loop thread runs a Swift job: a completion called then must not enter an actor inline.
    private var runningJobs = false
    /// Set when the loop starts tearing down: jobs may then run on `fallback`, so nothing enters an actor inline.
    private var tearingDown = false
    private var queue = FIFO<Job>()
    /// Transfers attached to the multi handle, by identity; they also hold the easy handle.
    private var active: [ObjectIdentifier: CurlTransfer] = [:]
    private var pool: [EasyHandle] = []
    private var groups: [UInt64: ConnectionShare] = [:]
    private var groupClock: UInt64 = 0
    private var loopFailure: String? = nil
    private var peakInFlight = 0

    init(index: Int, maxInFlight: Int, systemCAPath: String, trust: TrustFiles) throws(CurlCallError) {
        guard let multi = curl_multi_init() else {
            throw CurlCallError(call: "curl_multi_init", code: 0, curlMessage: "out of memory")
        }
        self.index = index
        self.multi = multi
        self.maxInFlight = maxInFlight
        self.systemCAPath = systemCAPath
        self.trust = trust
        self.fallback = DispatchQueue(label: "vphone-curl-\(index)-after-stop")
        Thread { [self] in run() }.start()
    }

    deinit {
        do { try Curl.check(curl_multi_cleanup(multi), "curl_multi_cleanup") } catch { assertionFailure("\(error)") }
    }

    // MARK: - Any thread

    /// Queues a job for the loop; false if the loop is shutting down (the caller fails the job).
    func submit(_ job: Job) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard !stopping else { return false }
        let wasEmpty = inbox.isEmpty && jobs.isEmpty
        inbox.append(job)
        // A non-empty inbox means a wakeup is already pending and the loop has not drained it yet; the loop
        // thread itself (a completion or a job asking for the next file) drains it before it sleeps again.
        if wasEmpty && !isLoopThread { wake() }
        return true
    }

    /// Whether the caller runs on this loop's thread.
    var isLoopThread: Bool {
        let id = threadID.load(ordering: .acquiring)
        return id != 0 && pthread_equal(pthread_t(id), pthread_self()) != 0
    }

    /// True on the loop thread outside any Swift job: a completion running now may enter an actor of this loop
    /// at once (`CurlLane.canCompleteInline`), as no job of that actor can be running.
    var isBetweenJobs: Bool { isLoopThread && !runningJobs && !tearingDown }

    /// Queues a Swift job to run on the loop thread (or, once the loop has stopped, on `fallback`).
    private func queueJob(_ job: UnownedJob) {
        lock.lock()
        defer { lock.unlock() }
        if finished {
            runAfterStop(job)
            return
        }
        let wasEmpty = inbox.isEmpty && jobs.isEmpty
        jobs.append(job)
        if wasEmpty && !isLoopThread { wake() }
    }

    /// Called under `lock`, so that jobs keep their order across the switch to `fallback`.
    private func runAfterStop(_ job: UnownedJob) {
        let serial = asUnownedSerialExecutor()
        let task = asUnownedTaskExecutor()
        fallback.async { job.runSynchronously(isolatedTo: serial, taskExecutor: task) }
    }

    func beginShutdown() {
        lock.lock()
        defer { lock.unlock() }
        guard !stopping else { return }
        stopping = true
        wake()
    }

    /// Waits for the loop thread to finish, unless called from that thread (a completion calling
    /// `shutdown()`), where waiting would deadlock; the thread then stops when the completion returns.
    func waitUntilStopped() {
        lock.lock()
        let mustWait = !joined && !isLoopThread
        if mustWait { joined = true }
        lock.unlock()
        if mustWait { stopped.wait() }
    }

    /// Seconds the loop has waited on the network with `maxInFlight` transfers in flight and more waiting for a place:
    /// while it did, the limit, not the server or this machine's CPU, held the transfers back.
    var idleAtCapSeconds: Double { Double(idleAtCapNs.load(ordering: .relaxed)) / 1e9 }

    /// The most transfers this loop has had in flight at once (for tests and diagnostics).
    var maxObservedInFlight: Int {
        lock.lock()
        defer { lock.unlock() }
        return sharedPeakInFlight
    }

    private func wake() {
        do {
            try Curl.check(curl_multi_wakeup(multi), "curl_multi_wakeup")
        } catch {
            // Not fatal: the loop polls at least every idlePollMs and drains the inbox then.
        }
    }

    // MARK: - Loop thread only

    private func run() {
        // Named for debuggers, `top -H` and perf (set from inside, so the OS thread carries it).
        let name = "vphone-curl-\(index)"
        Thread.current.name = name
        #if os(Linux)
        // Foundation's setter does not always reach the OS thread (seen under load: the thread kept the name
        // of the dispatch thread that created it), and Glibc's module lacks pthread_setname_np: set it here.
        if let comm = fopen("/proc/thread-self/comm", "w") {
            fputs(name, comm)
            fclose(comm)
        }
        #endif
        threadID.store(UInt(pthread_self()), ordering: .releasing)
        while true {
            lock.lock()
            if stopping {
                lock.unlock()
                break
            }
            swap(&inbox, &spareInbox)
            swap(&jobs, &spareJobs)
            lock.unlock()
            for job in spareInbox { queue.append(job) }
            spareInbox.removeAll(keepingCapacity: true)
            runJobs()

            startQueued()
            do {
                var running: Int32 = 0
                try Curl.check(curl_multi_perform(multi, &running), "curl_multi_perform")
                if finishCompleted() { startQueued() }
                // Work that arrived meanwhile (jobs resumed by completions, fetches they asked for): do not sleep.
                lock.lock()
                let pending = !inbox.isEmpty || !jobs.isEmpty
                lock.unlock()
                var ready: Int32 = 0
                let wait = pending ? 0 : Self.idlePollMs
                let atCap = active.count >= maxInFlight && queue.count > 0
                let slept = atCap ? DispatchTime.now().uptimeNanoseconds : 0
                try Curl.check(curl_multi_poll(multi, nil, 0, wait, &ready), "curl_multi_poll")
                if atCap {
                    idleAtCapNs.add(DispatchTime.now().uptimeNanoseconds - slept, ordering: .relaxed)
                }
            } catch {
                // The multi handle is unusable: fail everything rather than spin.
                loopFailure = "libcurl event loop \(index) stopped: \(error)"
                lock.lock()
                stopping = true
                lock.unlock()
                break
            }
        }
        tearDown()
        stopped.signal()
    }

    private func runJobs() {
        guard !spareJobs.isEmpty else { return }
        let serial = asUnownedSerialExecutor()
        let task = asUnownedTaskExecutor()
        runningJobs = true
        for job in spareJobs { job.runSynchronously(isolatedTo: serial, taskExecutor: task) }
        runningJobs = false
        spareJobs.removeAll(keepingCapacity: true)
    }

    /// Starts queued jobs while there is room.
    private func startQueued() {
        while active.count < maxInFlight, let job = queue.popFirst() {
            start(job)
        }
    }

    private func start(_ job: Job) {
        // spec §3 / security: only http, https, tftp and ftp reach libcurl.
        let scheme = URLText.scheme(of: job.request.url)
        guard let scheme, CurlTransport.allowedSchemes.contains(scheme) else {
            job.completion(.failure(FetchFailure.refusedScheme(scheme, request: job.request)))
            return
        }
        guard let easy = pool.popLast() ?? EasyHandle() else {
            job.completion(
                .failure(FetchFailure.setupFailed("curl_easy_init returned NULL (out of memory)", job.request))
            )
            return
        }
        let transfer = CurlTransfer(job: job, easy: easy)
        if let failure = transfer.loadRoots() {
            recycle(easy)
            job.completion(.failure(failure))
            return
        }
        do {
            let share = try share(for: job.request)
            try transfer.configure(share: share, systemCAPath: systemCAPath, trust: trust)
            if let share {
                share.users += 1
                transfer.share = share
            }
            try Curl.check(curl_multi_add_handle(multi, easy.raw), "curl_multi_add_handle")
        } catch {
            release(transfer)
            recycle(easy)
            job.completion(.failure(FetchFailure.setupFailed("\(error)", job.request)))
            return
        }
        active[ObjectIdentifier(transfer)] = transfer
        if active.count > peakInFlight {
            // Rises at most maxInFlight times, so the lock costs nothing in the steady state.
            peakInFlight = active.count
            lock.lock()
            sharedPeakInFlight = peakInFlight
            lock.unlock()
        }
    }

    /// Reads libcurl's finished transfers and calls their completions. Returns true if any finished.
    private func finishCompleted() -> Bool {
        var finished = false
        var remaining: Int32 = 0
        while let message = curl_multi_info_read(multi, &remaining) {
            guard message.pointee.msg == CURLMSG_DONE, let handle = message.pointee.easy_handle else { continue }
            let code = message.pointee.data.result
            // The transfer is found through CURLOPT_PRIVATE; `active` keeps it alive until here.
            var privateData: UnsafeMutableRawPointer? = nil
            do {
                try Curl.check(
                    curlshim_easy_getinfo_pointer(handle, CURLINFO_PRIVATE, &privateData),
                    "curl_easy_getinfo(PRIVATE)"
                )
            } catch {
                assertionFailure("\(error)")  // PRIVATE is always readable; nothing could find the transfer otherwise
            }
            guard let privateData else { continue }
            let transfer = Unmanaged<CurlTransfer>.fromOpaque(privateData).takeUnretainedValue()
            let result = transfer.result(code)
            finish(transfer)
            finished = true
            transfer.job.completion(result)
        }
        return finished
    }

    /// Detaches a transfer from the multi handle and returns its easy handle to the pool.
    private func finish(_ transfer: CurlTransfer) {
        active[ObjectIdentifier(transfer)] = nil
        // A server or proxy that asked for authentication may have left state on the handle (libcurl keeps it until
        // a reset), though the request had no credentials: it is reset rather than kept configured.
        let easy = transfer.easy
        if easy.settings != nil,
            (try? easy.long(CURLINFO_HTTPAUTH_AVAIL, "HTTPAUTH_AVAIL")) != 0
                || (try? easy.long(CURLINFO_PROXYAUTH_AVAIL, "PROXYAUTH_AVAIL")) != 0
        {
            easy.settings = nil
        }
        do {
            try Curl.check(curl_multi_remove_handle(multi, transfer.easy.raw), "curl_multi_remove_handle")
            release(transfer)
            recycle(transfer.easy)
        } catch {
            // The handle's state is unknown: let it be freed with the transfer instead of reusing it.
            release(transfer)
        }
    }

    private func recycle(_ easy: EasyHandle) {
        guard pool.count < maxInFlight else { return }
        do {
            // A handle configured from settings keeps its options for the next transfer with the same ones
            // (`CurlTransfer.configure` resets it for any other); any other handle is reset now.
            if easy.settings == nil { try easy.reset() }
            pool.append(easy)
        } catch {
            // A handle that cannot be reset is simply freed.
        }
    }

    private func tearDown() {
        tearingDown = true
        let message = loopFailure ?? "transport shut down"
        for transfer in active.values {
            var failure = FetchFailure.shutDown(transfer.job.request, message)
            failure.timings = transfer.timings()
            finish(transfer)
            transfer.job.completion(.failure(failure))
        }
        active.removeAll()
        while let job = queue.popFirst() {
            job.completion(.failure(FetchFailure.shutDown(job.request, message)))
        }
        lock.lock()
        let late = inbox
        inbox.removeAll()
        // From now on jobs run on `fallback`, those already queued first.
        finished = true
        for job in jobs { runAfterStop(job) }
        jobs.removeAll()
        lock.unlock()
        for job in late { job.completion(.failure(FetchFailure.shutDown(job.request, message))) }
        pool.removeAll()
        groups.removeAll()
    }

    // MARK: - Connection groups

    private func share(for request: FetchRequest) throws(CurlCallError) -> ConnectionShare? {
        guard request.reuseConnection, let group = request.connectionGroup else { return nil }
        groupClock &+= 1
        if let share = groups[group] {
            share.lastUsed = groupClock
            return share
        }
        let share = try ConnectionShare()
        share.lastUsed = groupClock
        if groups.count >= Self.maxIdleGroups { evictIdleGroups() }
        groups[group] = share
        return share
    }

    /// Frees the least recently used half of the idle groups (closing their idle connections).
    private func evictIdleGroups() {
        let idle = groups.filter { $0.value.users == 0 }.sorted { $0.value.lastUsed < $1.value.lastUsed }
        for (group, _) in idle.prefix(max(1, idle.count / 2)) { groups[group] = nil }
    }

    private func release(_ transfer: CurlTransfer) {
        if let share = transfer.share {
            share.users -= 1
            transfer.share = nil
        }
    }
}

// MARK: - Executor

/// A loop is also a serial executor: actors whose `unownedExecutor` is a loop's (`CurlLane.executor`) run on its
/// thread, between libcurl's turns, so the completion of a transfer can enter the actor that asked for it at once,
/// with no task, hop or thread switch (`CurlLane.canCompleteInline`). It is a task executor as well
/// (`CurlLane.taskExecutor`): a task that prefers it runs its nonisolated code on the same thread, so calling one of
/// the loop's actors from it is a switch on one thread, not a trip through the global pool. One job runs at a time,
/// whichever of the two it came through.
extension CurlLoop: SerialExecutor, TaskExecutor {
    func enqueue(_ job: consuming ExecutorJob) { queueJob(UnownedJob(job)) }

    func checkIsolated() {
        // After the loop has stopped, its jobs run on `fallback`.
        if isLoopThread { return }
        dispatchPrecondition(condition: .onQueue(fallback))
    }
}

extension FetchFailure {
    static func shutDown(_ request: FetchRequest, _ reason: String = "transport shut down") -> FetchFailure {
        FetchFailure(kind: .other, message: "\(reason) before \(URLText.redacted(request.url)) was fetched")
    }
}

// MARK: - FIFO

/// A queue with O(1) amortised append and popFirst.
struct FIFO<Element> {
    private var items: [Element?] = []
    private var head = 0

    var count: Int { items.count - head }

    mutating func append(_ item: Element) { items.append(item) }

    mutating func popFirst() -> Element? {
        guard head < items.count else { return nil }
        let item = items[head]
        items[head] = nil
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 1024, head * 2 >= items.count {
            items.removeFirst(head)
            head = 0
        }
        return item
    }
}
