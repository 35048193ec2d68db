// The real Transport: libcurl's multi interface, one thread per loop.

import CCurl
import Foundation

/// Fetches over libcurl: `http`, `https`, `tftp` and `ftp`, for one phone or ten thousand.
///
/// Each loop is a thread owning one `CURLM`, driven by `curl_multi_poll`. Requests are spread
/// round-robin over the loops (requests of one `connectionGroup` that reuse connections always go to
/// the same loop); each loop runs at most `maxInFlightPerLoop` transfers at once and queues the rest,
/// because libcurl's cost per transfer rises steeply past about a thousand in flight (STYLE.md).
///
/// **Completions run on the loop thread** that ran the transfer (also for refused URLs), so they
/// must return quickly: hand the result to your own queue or actor. A completion may call `fetch`
/// again. Only after `shutdown()` are completions called on the caller's thread, with `.other`.
///
/// ```swift
/// let transport = try CurlTransport(loops: 2)
/// defer { transport.shutdown() }
/// let result = await transport.fetch(FetchRequest(url: "http://127.0.0.1:8080/KX-UTG300.cfg",
///                                                 userAgent: "Panasonic_KX-UTG300/03.210 (0080f0c571eb)"))
/// ```
public final class CurlTransport: Transport, @unchecked Sendable {
    // @unchecked: `loops` is immutable after init; the round-robin counter is guarded by `lock`;
    // each CurlLoop guards its own shared state.

    /// The only schemes fetched; anything else fails as `.protocolRefused` without reaching libcurl.
    public static let allowedSchemes: Set<String> = ["http", "https", "tftp", "ftp"]

    /// The URL with any `user:password@` removed, for messages and logs.
    public static func redactedURL(_ url: String) -> String { URLText.redacted(url) }

    private let loops: [CurlLoop]
    private let trust: TrustFiles
    private let lock = NSLock()
    private var nextLoop = 0

    /// Starts `loops` threads, each running up to `maxInFlightPerLoop` transfers at once.
    ///
    /// - Throws: `TransportError` if the arguments are out of range or libcurl cannot be initialised.
    public convenience init(loops: Int = 1, maxInFlightPerLoop: Int = 256) throws {
        try self.init(loops: loops, maxInFlightPerLoop: maxInFlightPerLoop, systemCAPath: Curl.defaultCAPath)
    }

    /// `systemCAPath` is the directory trusted alongside `FetchRequest.extraCAFile` (tests point it
    /// elsewhere to prove both sources are consulted).
    init(loops: Int, maxInFlightPerLoop: Int, systemCAPath: String) throws {
        guard loops >= 1, maxInFlightPerLoop >= 1 else {
            throw TransportError(
                "CurlTransport needs at least 1 loop and 1 transfer in flight per loop "
                    + "(got loops: \(loops), maxInFlightPerLoop: \(maxInFlightPerLoop))"
            )
        }
        if case .failure(let error) = Curl.globalInit {
            throw TransportError("libcurl \(Curl.version) could not be initialised: \(error)")
        }
        let trust = TrustFiles(systemCAPath: systemCAPath, defaultBundle: Curl.defaultCAInfo)
        var started: [CurlLoop] = []
        for index in 0..<loops {
            do {
                started.append(
                    try CurlLoop(
                        index: index,
                        maxInFlight: maxInFlightPerLoop,
                        systemCAPath: systemCAPath,
                        trust: trust
                    )
                )
            } catch {
                for loop in started { loop.beginShutdown() }
                for loop in started { loop.waitUntilStopped() }
                throw TransportError("libcurl multi handle for loop \(index) could not be created: \(error)")
            }
        }
        self.loops = started
        self.trust = trust
    }

    deinit { shutdown() }

    /// For each loop, the most transfers it has had in flight at once.
    var maxObservedInFlight: [Int] { loops.map(\.maxObservedInFlight) }

    /// For each loop, the seconds it waited on the network with every place taken and transfers waiting for one:
    /// the share of a run spent so says whether `maxInFlightPerLoop`, rather than the server, set the pace.
    public var idleAtCapSeconds: [Double] { loops.map(\.idleAtCapSeconds) }

    /// Starts the download; `completion` is called once, on a loop thread (see the type's notes).
    public func fetch(
        _ request: FetchRequest,
        completion: @escaping @Sendable (Result<FetchResponse, FetchFailure>) -> Void
    ) {
        let loop: CurlLoop
        if request.reuseConnection, let group = request.connectionGroup {
            // One group's connections live in one loop's share handle.
            loop = loops[Int(group % UInt64(loops.count))]
        } else if loops.count == 1 {
            loop = loops[0]
        } else {
            lock.lock()
            nextLoop = nextLoop &+ 1
            let index = nextLoop % loops.count
            lock.unlock()
            loop = loops[index]
        }
        CurlLane(loop: loop).fetch(request, completion: completion)
    }

    /// One lane per loop thread: a `Transport` whose transfers all run on that loop, and the loop's executor.
    ///
    /// A fleet pins each phone to a lane and runs the phone's actor on the lane's executor, so a finished transfer
    /// is handed to the phone on the thread that finished it (`CurlLane.canCompleteInline`).
    public var lanes: [CurlLane] { loops.map(CurlLane.init) }

    /// Stops the loop threads and waits for them. Transfers in flight or queued fail with `.other`
    /// ("transport shut down"), and so does every later `fetch`. Safe to call more than once, and from
    /// a completion (it then does not wait for that loop's thread).
    public func shutdown() {
        for loop in loops { loop.beginShutdown() }
        for loop in loops { loop.waitUntilStopped() }
        trust.removeFiles()
    }
}

/// `CurlTransport` could not start.
public struct TransportError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The transfers and the Swift jobs of one loop thread (`CurlTransport.lanes`).
///
/// ```swift
/// actor Phone {
///     let lane: CurlLane
///     nonisolated var unownedExecutor: UnownedSerialExecutor { lane.executor }
/// }
/// ```
/// The phone's completions then run on the same thread as its jobs: when `canCompleteInline` is true, the
/// completion may use `assumeIsolated` instead of starting a task.
public struct CurlLane: TransportLane {
    fileprivate let loop: CurlLoop

    /// The loop as a serial executor, for actors that should run on its thread.
    public var executor: UnownedSerialExecutor { loop.asUnownedSerialExecutor() }

    /// The loop as a task executor (`Task(executorPreference:)`), for a task that mostly calls the lane's actors.
    public var taskExecutor: (any TaskExecutor)? { loop }

    /// True on the loop's thread outside any job: an actor on `executor` can be entered synchronously. False in
    /// a job (the actor may be the one running), on any other thread, and after the loop has stopped.
    public var canCompleteInline: Bool { loop.isBetweenJobs }

    public func fetch(
        _ request: FetchRequest,
        completion: @escaping @Sendable (Result<FetchResponse, FetchFailure>) -> Void
    ) {
        if !loop.submit(CurlLoop.Job(request: request, completion: completion)) {
            completion(.failure(FetchFailure.shutDown(request)))
        }
    }
}
