import FlyingFox
import FlyingSocks
import Foundation
import Logging
import PhoneRuntime

/// Why the control API could not start (bad bind address, port in use, unreadable password file).
public struct ControlServerError: Error, Sendable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// The control and status API of one running phone, over HTTP (FlyingFox), in the spirit of the phone's web UI.
///
/// ```swift
/// let api = try await ControlServer.start(runtime: runtime, port: 8080, bind: "127.0.0.1", auth: .none, logger: logger)
/// print(api.url)   // http://127.0.0.1:8080/
/// ...
/// await api.stop()
/// ```
///
/// Routes (JSON unless noted; errors are `{"error": kind, "message": text}`): `GET /` (HTML status page),
/// `GET /status`, `GET /config`, `GET /config/NAME`, `PUT /config/NAME` (body `{"value": "..."}`), `GET /events`,
/// `POST /resync`, `POST /reboot`, `POST /factory-reset`, `GET /healthz` (text, never asks for a password).
public final class ControlServer: Sendable {
    /// The port the API listens on (the one chosen by the system when started with port 0).
    public let port: Int
    /// The address it is bound to, as given (`127.0.0.1`, `0.0.0.0`, `::`, ...).
    public let bind: String
    private let server: HTTPServer
    private let task: Task<Void, Never>
    private let state: ServerState
    private let logger: Logger

    /// `http://ADDRESS:PORT/` (IPv6 in brackets; a wildcard bind shows as 127.0.0.1).
    public var url: String { "http://\(Self.urlHost(bind)):\(port)/" }

    private init(
        port: Int,
        bind: String,
        server: HTTPServer,
        task: Task<Void, Never>,
        state: ServerState,
        logger: Logger
    ) {
        self.port = port
        self.bind = bind
        self.server = server
        self.task = task
        self.state = state
        self.logger = logger
    }

    /// Starts serving `runtime` and returns once the port accepts connections.
    ///
    /// - Parameters:
    ///   - port: the TCP port; 0 picks a free one (see `port`).
    ///   - bind: an IPv4 or IPv6 address (`localhost` means 127.0.0.1). Default 127.0.0.1: only this host.
    ///   - auth: the admin password, if any (`GET /healthz` stays open).
    ///   - requestTimeout: seconds a request may take; `POST /resync` waits for a whole provisioning cycle.
    /// - Throws: `ControlServerError` naming the address when it cannot listen (bad address, port in use, ...).
    public static func start(
        runtime: PhoneRuntime,
        port: Int,
        bind: String = "127.0.0.1",
        auth: ControlAuth = .none,
        logger: Logger,
        requestTimeout: TimeInterval = 300
    ) async throws(ControlServerError) -> ControlServer {
        guard (0...65535).contains(port) else {
            throw ControlServerError("--http-port \(port): expected a TCP port, 1-65535 (0: any free port)")
        }
        let handler = ControlHandler(runtime: runtime, auth: auth, logger: logger)
        let state = ServerState()
        let server: HTTPServer
        do {
            server = try makeServer(
                bind: bind,
                port: UInt16(port),
                handler: handler,
                log: FlyingFoxLogger(logger: logger, state: state),
                timeout: requestTimeout
            )
        } catch {
            throw ControlServerError(
                "--http-bind \(bind): not an IPv4 or IPv6 address (e.g. 127.0.0.1, 0.0.0.0, ::1, ::)"
            )
        }
        let task = Task {
            do {
                try await server.run()
            } catch {
                state.fail(error)
            }
        }
        // FlyingFox binds inside run(): wait for it to listen, or to fail (port in use, no such address here).
        let deadline = Date().addingTimeInterval(10)
        while await !server.isListening {
            if let error = state.failure {
                throw ControlServerError("cannot listen on \(urlHost(bind)):\(port): \(describe(error))")
            }
            if Date() > deadline {
                task.cancel()
                throw ControlServerError("cannot listen on \(urlHost(bind)):\(port): timed out")
            }
            try? await Task.sleep(nanoseconds: 2_000_000)
        }
        var actualPort = port
        switch await server.listeningAddress {
        case .ip4(_, let p), .ip6(_, let p): actualPort = Int(p)
        default: break
        }
        state.isServing = true
        let api = ControlServer(port: actualPort, bind: bind, server: server, task: task, state: state, logger: logger)
        logger.notice("control API listening on \(api.url)", metadata: ["auth": "\(auth.kind)"])
        return api
    }

    /// Stops listening, gives requests in progress `grace` seconds to finish, and returns when the server is gone.
    ///
    /// FlyingFox's accept loop only ends when cancelled, so a stop always takes the whole grace period: keep it short
    /// (a stopped phone answers every pending request at once, with 503).
    public func stop(grace: TimeInterval = 0.2) async {
        state.isServing = false
        await server.stop(timeout: grace)
        task.cancel()
        await task.value
        logger.debug("control API stopped")
    }

    // MARK: - Helpers

    private static func makeServer(
        bind: String,
        port: UInt16,
        handler: ControlHandler,
        log: FlyingFoxLogger,
        timeout: TimeInterval
    ) throws -> HTTPServer {
        let host = bind == "localhost" ? "127.0.0.1" : bind
        if host.contains(":") {
            let address = try sockaddr_in6.inet6(ip6: host.trimmingCharacters(in: ["[", "]"]), port: port)
            return HTTPServer(address: address, timeout: timeout, logger: log, handler: handler)
        }
        let address = try sockaddr_in.inet(ip4: host, port: port)
        return HTTPServer(address: address, timeout: timeout, logger: log, handler: handler)
    }

    static func urlHost(_ bind: String) -> String {
        switch bind {
        case "0.0.0.0", "": return "127.0.0.1"
        case "::", "[::]": return "[::1]"
        default: return bind.contains(":") && !bind.hasPrefix("[") ? "[\(bind)]" : bind
        }
    }

    private static func describe(_ error: any Error) -> String {
        if let socket = error as? SocketError, case .failed(_, let errno, let message) = socket {
            return errno == EADDRINUSE ? "the port is in use (\(message))" : message
        }
        return "\(error)"
    }
}

extension ControlAuth {
    /// For the log: never the password.
    var kind: String {
        switch self {
        case .none: return "none"
        case .password: return "password"
        case .phone: return "phone"
        }
    }
}

/// What the server task and its logger share with `start` and `stop`: the first failure, and whether it serves.
private final class ServerState: @unchecked Sendable {
    // @unchecked: both properties are only touched under `lock`.
    private let lock = NSLock()
    private var error: (any Error)?
    private var serving = false

    func fail(_ e: any Error) {
        lock.lock()
        if error == nil { error = e }
        lock.unlock()
    }

    var failure: (any Error)? {
        lock.lock()
        defer { lock.unlock() }
        return error
    }

    /// Between a successful start and a stop: a server error then is news (before, `start` throws it; after, it
    /// is the stop).
    var isServing: Bool {
        get {
            lock.lock()
            defer { lock.unlock() }
            return serving
        }
        set {
            lock.lock()
            serving = newValue
            lock.unlock()
        }
    }
}

/// FlyingFox's own messages (connections, client disconnects) at debug level: they are noise for a phone's log.
/// A server that dies while serving is an error.
struct FlyingFoxLogger: FlyingSocks.Logging {
    let logger: Logger
    fileprivate let state: ServerState

    func logDebug(_ debug: @autoclosure () -> String) {}
    func logInfo(_ info: @autoclosure () -> String) { logger.trace("http: \(info())") }
    func logWarning(_ warning: @autoclosure () -> String) { logger.debug("http: \(warning())") }
    func logError(_ error: @autoclosure () -> String) { logger.debug("http: \(error())") }
    func logCritical(_ critical: @autoclosure () -> String) {
        if state.isServing {
            logger.error("control API: \(critical())")
        } else {
            logger.debug("http: \(critical())")
        }
    }
}
