import Flash
import Foundation
import Logging
import PhoneCore
import Transport

/// One completed transfer, as a runtime saw it: what fleet measurement and recordings are built on.
public struct FetchRecord: Sendable {
    public var order: FetchOrder
    public var result: Result<FetchResponse, FetchFailure>
    /// A transfer that succeeded but whose content the phone rejected (fleet statistics count it as a failed
    /// request of this class), or nil.
    public var rejected: FileRejection?

    public init(order: FetchOrder, result: Result<FetchResponse, FetchFailure>, rejected: FileRejection? = nil) {
        self.order = order
        self.result = result
        self.rejected = rejected
    }
}

/// Drives one phone: feeds its machine events, executes the actions it returns with real transport, flash and clock.
///
/// The same runtime runs `vphone boot` and every phone of `vphone fleet` (ARCHITECTURE rule 2).
public actor PhoneRuntime {
    public private(set) var machine: PhoneMachine
    private let store: any FlashBackend
    var flashStore: any FlashBackend { store }
    var isStopped: Bool { stopped }
    func clockNow() -> PhoneTime { clock.now() }
    func replaceMachine(_ m: PhoneMachine) { machine = m }
    private let transport: any Transport
    private let clock: any PhoneClock
    private let logger: Logger
    private let tls: TLSOptions
    private var idleWaiters: [CheckedContinuation<Void, Never>] = []
    private var cycleWaiters: [CheckedContinuation<CycleReport?, Never>] = []
    private var inFlight = 0
    fileprivate var stopped = false
    /// When each armed timer fires: the machine's due time, spread by `timerJitter`.
    private var due: [TimerKind: PhoneTime] = [:]
    private let timerJitter: Double
    private var random: SplitMix64
    /// The first flash write that failed, if any: the phone keeps running on what it has in memory.
    public private(set) var flashError: FlashError?
    /// Called for every finished transfer once the machine has judged what it delivered (fleet statistics,
    /// recordings): each transfer is counted once, with its final class.
    private let onFetch: (@Sendable (FetchRecord) -> Void)?
    /// The transport thread this phone runs on (fleet phones: its completions then enter the phone at once instead of
    /// through a task), or, for a phone with no lane, a plain actor whose executor it borrows.
    private let isolation: Isolation
    private enum Isolation: Sendable {
        case lane(any TransportLane)
        case own(Home)
    }
    private actor Home {}
    private var lane: (any TransportLane)? {
        if case .lane(let lane) = isolation { return lane }
        return nil
    }

    /// The lane's executor, or the home actor's: read on every entry into the phone, so worked out once (a switch
    /// over `isolation` copied the lane's existential, a retain and a release each time). `isolation` keeps its
    /// owner alive.
    private let executor: UnownedSerialExecutor
    nonisolated public var unownedExecutor: UnownedSerialExecutor { executor }

    /// TLS settings from the command line, applied to every transfer of this phone.
    public struct TLSOptions: Sendable {
        public var extraCAFile: String?
        public var insecure: Bool
        public init(extraCAFile: String? = nil, insecure: Bool = false) {
            self.extraCAFile = extraCAFile
            self.insecure = insecure
        }
    }

    public init(
        machine: PhoneMachine,
        store: sending any FlashBackend,
        transport: any Transport,
        clock: any PhoneClock,
        logger: Logger,
        tls: TLSOptions = TLSOptions(),
        timerJitter: Double = 0,
        onFetch: (@Sendable (FetchRecord) -> Void)? = nil,
        lane: (any TransportLane)? = nil
    ) {
        self.timerJitter = max(0, min(timerJitter, 1))
        self.random = SplitMix64(seed: machine.flash.identity.mac.value)
        self.machine = machine
        self.store = store
        self.transport = transport
        self.clock = clock
        self.logger = logger
        self.tls = tls
        self.onFetch = onFetch
        if let lane {
            self.isolation = .lane(lane)
            self.executor = lane.executor
        } else {
            let home = Home()
            self.isolation = .own(home)
            self.executor = home.unownedExecutor
        }
    }

    // MARK: - Driving

    /// Powers the phone on and returns when the boot-time provisioning cycle has finished (nil if the phone was shut
    /// down first).
    @discardableResult
    public func powerOn() async -> CycleReport? {
        _ = try? store.changedElsewhere()  // takes note: the machine's flash is the one loaded for this power-on
        deliver(.powerOn)
        return await nextCycleReport()
    }

    /// Asks for a resync (as the control API or a SIP NOTIFY would) and returns when that cycle has finished (nil if
    /// the phone was shut down first).
    @discardableResult
    public func resync(reason: String) async -> CycleReport? {
        deliver(.resyncRequested(reason: reason))
        return await nextCycleReport()
    }

    /// Delivers a SIP NOTIFY.
    public func sipNotify(event: String) { deliver(.sipNotify(event: event)) }

    /// Makes a local edit; returns the refusal, if any.
    public func localEdit(name: String, value: String) -> LocalEditRefusal? {
        for action in deliver(.localEdit(name: name, value: value)) {
            if case .refused(let r) = action { return r }
        }
        return nil
    }

    /// Runs the phone's timers until the task is cancelled, or until the phone's clock reaches `stop`.
    ///
    /// With a virtual clock, time jumps from timer to timer, and the loop ends when no timer is armed.
    public func run(until stop: PhoneTime? = nil) async {
        while !Task.isCancelled && !stopped {
            await waitIdle()
            let now = clock.now()
            if let stop, now >= stop { return }
            let next = due.min { $0.value < $1.value }
            if let next, next.value <= now {
                deliver(.timerFired(next.key))
                continue
            }
            if next == nil && stop == nil && clock.isVirtual { return }
            var target = next?.value ?? stop ?? now.adding(minutes: 24 * 60)
            if let stop { target = min(target, stop) }
            if let chunk = clock.maxSleepChunkMs { target = min(target, now.adding(milliseconds: chunk)) }
            do {
                try await clock.sleep(until: target)
            } catch {
                return
            }
        }
    }

    /// Reloads local edits when another process wrote the flash (`vphone config set` beside this phone) since the
    /// phone last looked; called before any event that may start a cycle, and when the phone powers on (to take
    /// note). A flash nothing else writes answers at once.
    private func pickUpLocalEditsMadeElsewhere() {
        guard (try? store.changedElsewhere()) == true else { return }
        reloadLocalEdits()
    }

    /// Reloads local edits from flash (another process may have written them) before the next cycle.
    public func reloadLocalEdits() {
        guard !stopped else { return }
        do {
            let snapshot = try store.load()
            deliver(.localEditsReloaded(snapshot.localEdits))
        } catch {
            recordFlashError(error)
        }
    }

    /// Suspends until no provisioning cycle is running, or the phone is shut down.
    public func waitIdle() async {
        if isIdle || stopped { return }
        await withCheckedContinuation { idleWaiters.append($0) }
    }

    private var isIdle: Bool {
        if case .provisioning = machine.phase { return false }
        return inFlight == 0
    }

    private func nextCycleReport() async -> CycleReport? {
        if stopped { return nil }
        if isIdle, let r = machine.lastReport { return r }
        return await withCheckedContinuation { cycleWaiters.append($0) }
    }

    // MARK: - Executing actions

    /// Feeds one event to the machine and carries out its actions: flash first, then timers and downloads.
    @discardableResult
    private func deliver(_ event: PhoneEvent) -> [PhoneAction] {
        guard !stopped else { return [] }
        switch event {
        case .resyncRequested, .timerFired, .sipNotify:
            // A cycle may start: it must merge the local edits in flash now, made by another process too.
            pickUpLocalEditsMadeElsewhere()
        default:
            break
        }
        if event == .powerOn { due = [:] }  // timers do not survive a power cycle
        if case .timerFired(let kind) = event { due[kind] = nil }
        let actions = machine.handle(event, at: clock.now())
        for action in actions {
            switch action {
            case .persist(let changes):
                for e in changes.events { log(e) }
                do {
                    try store.apply(changes)
                } catch {
                    recordFlashError(error)
                }
            case .fetch(let order):
                start(order)
            case .arm(let kind, let at):
                // Jitter spreads a fleet's resyncs (--jitter): each firing moves by up to ±j of the delay.
                let delay = Double(at.millisecondsSinceEpoch - clock.now().millisecondsSinceEpoch)
                let offset = timerJitter > 0 ? Int64(delay * timerJitter * (random.nextUnit() * 2 - 1)) : 0
                due[kind] = at.adding(milliseconds: offset)
            case .cancel(let kind):
                due[kind] = nil
            case .refused:
                break
            case .rejected:
                break  // reported with the transfer's record (`finished`)
            case .cycleFinished(let report):
                let waiters = cycleWaiters
                cycleWaiters = []
                for w in waiters { w.resume(returning: report) }
            }
        }
        if isIdle {
            let waiters = idleWaiters
            idleWaiters = []
            for w in waiters { w.resume() }
        }
        return actions
    }

    private func start(_ order: FetchOrder) {
        var request = FetchRequest(url: order.url, userAgent: order.userAgent)
        request.connectTimeoutMs = order.connectTimeoutMs
        request.totalTimeoutMs = order.totalTimeoutMs
        request.maxBytes = order.maxBytes
        request.username = order.username
        request.password = order.password
        request.reuseConnection = order.reuseConnection
        request.extraCAFile = tls.extraCAFile
        request.extraCAPEM = order.extraCAPEM
        request.proxy = order.proxy
        request.insecure = tls.insecure
        inFlight += 1
        let onFetch = self.onFetch
        let lane = self.lane
        transport.fetch(request) { [weak self] result in
            guard let self else {
                onFetch?(FetchRecord(order: order, result: result))
                return
            }
            if let lane, lane.canCompleteInline {
                // On the lane's thread between jobs: this actor runs nowhere else, so enter it now.
                self.assumeIsolated { $0.finished(order, result) }
            } else {
                Task { await self.finished(order, result) }
            }
        }
    }

    private func finished(_ order: FetchOrder, _ result: Result<FetchResponse, FetchFailure>) {
        inFlight -= 1
        var rejected: FileRejection?
        switch result {
        case .success(let response):
            for case .rejected(order.target, let why) in deliver(
                .fetched(id: order.id, status: response.status, body: response.body)
            ) {
                rejected = why
            }
        case .failure(let failure):
            deliver(
                .fetchFailed(
                    id: order.id,
                    FetchError(kind: failure.kind.rawValue, httpStatus: failure.httpStatus, message: failure.message)
                )
            )
        }
        onFetch?(FetchRecord(order: order, result: result, rejected: rejected))
    }

    private func recordFlashError(_ error: FlashError) {
        if flashError == nil { flashError = error }
        logger.critical("flash write failed: \(error); the phone keeps running on what it has in memory")
    }

    private func log(_ entry: LogEntry) {
        let level: Logger.Level
        switch entry.level {
        case .debug: level = .debug
        case .info: level = .info
        case .warning: level = .warning
        case .error: level = .error
        }
        // Fleet phones log to a no-op handler: build nothing for a line nobody will see (hot path, 10,000 phones).
        guard logger.logLevel <= level else { return }
        var metadata: Logger.Metadata = ["event": .string(entry.kind), "boot": .stringConvertible(entry.boot)]
        for (k, v) in entry.fields where !v.isEmpty { metadata[k] = .string(v) }
        metadata["phone_time"] = .string(entry.at.description)
        logger.log(level: level, "\(entry.message)", metadata: metadata)
    }
}

extension PhoneRuntime {
    /// Stops the phone: no event is handled after this returns, so a flash write is never cut in half. Everyone
    /// waiting for a cycle or for idleness is released; transfers still in flight are abandoned; flash is closed.
    public func shutdown() {
        if !stopped { store.close() }
        stopped = true
        let idle = idleWaiters
        let cycles = cycleWaiters
        idleWaiters = []
        cycleWaiters = []
        for w in idle { w.resume() }
        for w in cycles { w.resume(returning: nil) }
    }
}
