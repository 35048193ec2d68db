import Dispatch
import Flash
import FleetReport
import Foundation
import Logging
import PhoneCore
import PhoneRuntime
import Synchronization
import Transport

/// How phones arrive (an open model: each phone has an intended start, and its latency counts from there, so a slow
/// server cannot hide behind phones that start late).
public enum ArrivalSchedule: Sendable, Equatable {
    /// All at once: the power-restore storm.
    case storm
    /// `n` new phones a second until `--count` have started.
    case ramp(perSecond: Double)
    /// A steady stream of `n` phones a second for the whole `--duration`.
    case rate(perSecond: Double)

    /// Seconds after the start at which phone `index` is meant to power on.
    public func intendedStart(of index: Int) -> Double {
        switch self {
        case .storm: return 0
        case .ramp(let n), .rate(let n): return Double(index) / n
        }
    }
}

/// Everything `vphone fleet` was told.
public struct FleetOptions: Sendable {
    public var count: Int
    public var macStart: MAC
    public var discovery: DiscoveryOptions
    public var schedule: ArrivalSchedule = .storm
    /// Phone time after which a `--duration` run stops (nil: stop when every phone has finished booting).
    public var durationMs: Int64?
    public var timeScale: Double = 1
    /// Fraction (0...1) by which each timer firing is spread.
    public var jitter: Double = 0
    /// Source addresses, one per phone in turn (`CURLOPT_INTERFACE`).
    public var sourceAddresses: [String] = []
    public var loops: Int = 1
    public var maxInFlightPerLoop: Int = 256
    /// Phones in their boot-time provisioning at once (nil: 2 × loops × maxInFlightPerLoop). The others wait for a
    /// place in arrival order, their latency still counting from their intended start. Bounding it makes the fleet
    /// depth-first: a phone's next file goes ahead of later phones' initial files, so per-request latency measures
    /// the server rather than vphone's own queue, and a storm holds only the admitted phones' documents at once.
    public var maxBooting: Int?
    public var tls = PhoneRuntime.TLSOptions()
    /// The shard this process runs (`--shard K/N`), for the report.
    public var shardLabel: String?
    /// Make the phones' debug-level events (which file won each parameter, ...): off by default, as fleet phones
    /// log nothing and their events are rarely read; `vphone fleet --log-level debug` turns them on (they then go
    /// to the store's event log with `--store`).
    public var debugEvents = false

    public init(count: Int, macStart: MAC, discovery: DiscoveryOptions) {
        self.count = count
        self.macStart = macStart
        self.discovery = discovery
    }
}

/// Where each phone's flash lives in a fleet run.
public protocol FleetFlashProvider: Sendable {
    /// The flash of the phone with this identity (created factory-fresh when new).
    func flash(for identity: Identity) throws(FlashError) -> any FlashBackend
    /// Writes everything still buffered.
    func flush() throws(FlashError)
    /// Whether the phones' events are kept (a store's event log). When they are not, and fleet phones log nothing,
    /// the phones do not make them.
    var keepsEvents: Bool { get }
    /// Phones whose changes are buffered, not yet written (0 when nothing is buffered).
    var backlog: Int { get }
}

extension FleetFlashProvider {
    public var keepsEvents: Bool { true }
    public var backlog: Int { 0 }
}

/// Flash in memory only (no `--store`).
public struct MemoryFleetFlash: FleetFlashProvider {
    public init() {}
    public func flash(for identity: Identity) throws(FlashError) -> any FlashBackend {
        MemoryFlash(FlashSnapshot(identity: identity), retain: false)
    }
    public func flush() throws(FlashError) {}
    /// Memory flash keeps no events (`MemoryFlash(keepEvents: 0)`).
    public var keepsEvents: Bool { false }
}

/// Runs many phones in one process, each the same `PhoneMachine` and `PhoneRuntime` as `vphone boot`
/// (ARCHITECTURE rule 2), on one shared libcurl engine; fleet mode adds only scheduling and measurement.
public final class FleetRunner: Sendable {
    public let options: FleetOptions
    public let stats: FleetStats
    private let profile: PreparedProfile
    private let transport: any Transport
    private let flash: any FleetFlashProvider
    private let logger: Logger

    public init(
        options: FleetOptions,
        profile: PreparedProfile,
        transport: any Transport,
        flash: any FleetFlashProvider = MemoryFleetFlash(),
        stats: FleetStats,
        logger: Logger
    ) {
        self.options = options
        self.profile = profile
        self.transport = transport
        self.flash = flash
        self.stats = stats
        self.logger = logger
    }

    /// Runs the fleet: every phone's boot-time provisioning, then (with a duration) its timers until the end.
    ///
    /// Cancelling the task that runs this is an early, clean stop (SIGTERM/SIGINT): no new phone starts, phones
    /// still waiting for a transfer are shut down (their transfers abandoned, as `vphone boot` does), timers stop,
    /// and the store is flushed. A phone that had not finished its boot-time provisioning is not recorded (it has
    /// no outcome); every phone that had finished is.
    /// - Returns: the wall time of the run, in seconds.
    public func run() async throws -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        let clock = ScaledClock(scale: options.timeScale, chunked: false)
        let stop = options.durationMs.map { clock.now().adding(milliseconds: $0) }
        let count = arrivals()
        // Transfers abandoned by an interruption are not the server's doing: they are not recorded.
        let interrupted = StopFlag()
        try await withTaskCancellationHandler {
            try await runPhones(
                count: count,
                start: start,
                clock: clock,
                stop: stop,
                interrupted: interrupted
            )
        } onCancel: {
            interrupted.set()
        }
        // The run ends when the last phone does; writing the store's last batch is not the server's time.
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        try flash.flush()
        return seconds
    }

    private func runPhones(
        count: Int,
        start: UInt64,
        clock: ScaledClock,
        stop: PhoneTime?,
        interrupted: StopFlag
    ) async throws {
        let quiet = Logger(label: "vphone.fleet.phone", factory: { _ in SwiftLogNoOpLogHandler() })
        // Each phone runs on one loop thread, its actor included (`CurlLane`): no task or thread switch per file.
        let lanes = (transport as? CurlTransport)?.lanes ?? []
        // The user's --max-booting is kept to the phone; the default limit lets the producer start phones in batches.
        let defaultLimit = 2 * options.loops * options.maxInFlightPerLoop
        let gate =
            options.maxBooting.map { AdmissionGate(limit: $0) }
            ?? AdmissionGate(limit: defaultLimit, batch: AdmissionGate.defaultBatch(limit: defaultLimit))
        // Discarding: a phone's finished task is freed at once. A plain task group keeps every finished child until
        // its result is awaited, about 2.4 KB a phone, which made a 100,000-phone storm grow to 300 MiB.
        try await withThrowingDiscardingTaskGroup { group in
            for index in 0..<count {
                let intended = options.schedule.intendedStart(of: index)
                // Wait for this phone's intended start (an open model: the schedule does not wait for replies).
                let target = start + UInt64(intended * 1e9)
                let now = DispatchTime.now().uptimeNanoseconds
                if target > now {
                    do { try await Task.sleep(nanoseconds: target - now) } catch { break }  // cancelled: no more phones
                }
                if Task.isCancelled { break }
                if let stop, clock.now() >= stop { break }
                // Depth first: wait for a place among the phones booting now (cancelled: no more phones).
                do { try await gate.enter() } catch { break }
                let mac = options.macStart.advanced(by: UInt64(index))
                let identity = Identity(mac: mac, profile: profile.profile, createdAt: clock.now())
                let backend = try flash.flash(for: identity)
                let snapshot = try backend.load()
                var machine = PhoneMachine(profile: profile, flash: snapshot, discovery: options.discovery)
                machine.debugEvents = options.debugEvents
                machine.makesEvents = flash.keepsEvents
                let source =
                    options.sourceAddresses.isEmpty
                    ? nil : options.sourceAddresses[index % options.sourceAddresses.count]
                let stats = self.stats
                let lane = lanes.isEmpty ? nil : lanes[index % lanes.count]
                let runtime = PhoneRuntime(
                    machine: machine,
                    store: backend,
                    transport: PhoneTransport(inner: lane ?? transport, mac: mac, sourceAddress: source),
                    clock: clock,
                    logger: quiet,
                    tls: options.tls,
                    timerJitter: options.jitter,
                    onFetch: { record in if !interrupted.isSet { Self.record(record, into: stats) } },
                    lane: lane
                )
                // The phone's task runs on its lane too: powering on, recording and shutting down stay on one thread.
                group.addTask(executorPreference: lane?.taskExecutor) {
                    // Cancelled (the fleet was interrupted): shut the phone down, which releases its waiters.
                    let report = await withTaskCancellationHandler {
                        await runtime.powerOn()
                    } onCancel: {
                        Task { await runtime.shutdown() }
                    }
                    gate.leave()
                    if report == nil && Task.isCancelled {
                        await runtime.shutdown()
                        return
                    }
                    let done = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                    stats.recordPhone(
                        mac: mac.upper,
                        outcome: Self.outcomeName(report?.outcome),
                        intendedStartS: intended,
                        completedAtS: done,
                        latencyUs: Int64((done - intended) * 1e6),
                        files: Self.fileOutcomes(report),
                        error: Self.firstError(report)
                    )
                    if let stop, !Task.isCancelled {
                        await withTaskCancellationHandler {
                            await runtime.run(until: stop)
                        } onCancel: {
                            Task { await runtime.shutdown() }
                        }
                    }
                    await runtime.shutdown()
                }
            }
        }
    }

    /// A note when the loops spent a quarter or more of the run (the whole run: with `--duration`, its idle hours too)
    /// waiting on the server with every place taken and transfers queued (`FleetReport.inFlightLimitShare`): the
    /// server was asked for no more than `--max-in-flight` allowed. A server far away then could have taken more; a
    /// saturated one looks the same from here, so the note says how to tell. Nil otherwise (a storm on a server
    /// nearby keeps the loops busy instead).
    public static func capNote(share: Double?, maxInFlight: Int) -> String? {
        guard let share, share >= 0.25 else { return nil }
        let transfers = maxInFlight == 1 ? "1 transfer" : "\(maxInFlight) transfers"
        return "note: the loops spent \(Int((share * 100).rounded()))% of the run with \(transfers) in flight each "
            + "and more waiting, with nothing to do but wait for the server: --max-in-flight may have set the pace, "
            + "not the server. Run again with it raised (to at least the request rate wanted × the time a request "
            + "takes, over all loops): if the request rate rises, it did; if not, the server is the limit"
    }

    /// How many phones start: `--count`, or for `--rate` over a duration, rate × duration (at most `--count`).
    func arrivals() -> Int {
        if case .rate(let n) = options.schedule, let ms = options.durationMs {
            let realSeconds = Double(ms) / 1000 / options.timeScale
            // In Double first: rate × seconds may be far past an Int before the cap.
            let wanted = n * realSeconds
            return wanted >= Double(options.count) ? options.count : max(1, Int(wanted))
        }
        return options.count
    }

    static func outcomeName(_ outcome: CycleOutcome?) -> String {
        switch outcome {
        case .provisioned: return "provisioned"
        case .fellBack: return "fell_back"
        case .unconfigured, nil: return "failed"
        }
    }

    static func fileOutcomes(_ report: CycleReport?) -> [String: String] {
        var out: [String: String] = [:]
        for (k, v) in report?.files ?? [:] { out[k.rawValue] = v.outcome.rawValue }
        return out
    }

    static func firstError(_ report: CycleReport?) -> String? {
        guard let report else { return "stopped before the boot-time provisioning finished" }
        return FileKind.allCases.compactMap { k in
            report.files[k].flatMap { $0.reason.isEmpty ? nil : "\(k.rawValue): \($0.reason)" }
        }.first
    }

    /// The file kind a transfer is counted under in the report.
    static func fileName(_ target: FetchTarget) -> String {
        switch target {
        case .file(let k): k.rawValue
        case .rootCertificate: "certificate"
        }
    }

    static func record(_ record: FetchRecord, into stats: FleetStats) {
        let file = fileName(record.order.target)
        switch record.result {
        case .success(let r):
            stats.recordRequest(
                file: file,
                // Delivered whole; the phone may still have rejected it (an error page served as 200).
                outcome: record.rejected?.rawValue ?? "ok",
                httpStatus: r.status,
                dnsUs: r.timings.dnsUs,
                connectUs: r.timings.connectUs,
                tlsUs: r.timings.tlsUs,
                firstByteUs: r.timings.firstByteUs,
                totalUs: r.timings.totalUs
            )
        case .failure(let f):
            stats.recordRequest(
                file: file,
                outcome: f.kind.rawValue,
                httpStatus: f.httpStatus,
                dnsUs: f.timings.dnsUs,
                connectUs: f.timings.connectUs,
                tlsUs: f.timings.tlsUs,
                firstByteUs: f.timings.firstByteUs,
                totalUs: f.timings.totalUs
            )
        }
    }
}

/// One phone's view of the shared engine: its own connection group (a phone never borrows another phone's
/// connection, even with the `reuseConnection` quirk) and its own source address (`--source-ips`).
struct PhoneTransport: Transport {
    let inner: any Transport
    let mac: MAC
    let sourceAddress: String?

    func fetch(_ request: FetchRequest, completion: @escaping @Sendable (Result<FetchResponse, FetchFailure>) -> Void) {
        var r = request
        r.connectionGroup = mac.value
        if let sourceAddress { r.sourceInterface = "host!\(sourceAddress)" }
        inner.fetch(r, completion: completion)
    }
}

/// Set once, read from any thread.
final class StopFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }
}
