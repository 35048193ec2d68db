import FlyingFox
import FlyingSocks
import Foundation
import Logging

/// Why a server could not start: bad bind address, port in use.
public struct HTTPListenerError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A FlyingFox `HTTPServer` bound to one address and port, started and stopped the same way by every server vphone
/// runs (the control API, `vphone serve`, `vphone testserver`).
///
/// ```swift
/// let listener = try await HTTPListener.start(handler: handler, bind: "127.0.0.1", port: 0, name: "provisioning server", logger: logger)
/// print(listener.url)   // http://127.0.0.1:41234/
/// await listener.stop()
/// ```
public final class HTTPListener: Sendable {
    /// The port it listens on (the one chosen by the system when started with port 0).
    public let port: Int
    /// The address it is bound to, as given (`127.0.0.1`, `0.0.0.0`, `::`, ...).
    public let bind: String
    private let server: HTTPServer
    private let task: Task<Void, Never>
    private let state: ListenerState

    /// `http://ADDRESS:PORT/` (IPv6 in brackets; a wildcard bind shows as the loopback address).
    public var url: String { "http://\(Self.urlHost(bind)):\(port)/" }

    private init(port: Int, bind: String, server: HTTPServer, task: Task<Void, Never>, state: ListenerState) {
        self.port = port
        self.bind = bind
        self.server = server
        self.task = task
        self.state = state
    }

    /// Starts serving and returns once the port accepts connections.
    ///
    /// - Parameters:
    ///   - bind: an IPv4 or IPv6 address (`localhost` means 127.0.0.1).
    ///   - port: the TCP port; 0 picks a free one (see `port`).
    ///   - timeout: seconds a request may take before FlyingFox answers 500 for it.
    ///   - name: what the server is, for error messages (`control API`).
    ///   - portOption, bindOption: the command-line flags that chose the port and the address, named in errors.
    /// - Throws: `HTTPListenerError` naming the address and the fix.
    public static func start(
        handler: some HTTPHandler,
        bind: String,
        port: Int,
        timeout: TimeInterval,
        name: String,
        portOption: String = "--port",
        bindOption: String = "--bind",
        logger: Logger
    ) async throws(HTTPListenerError) -> HTTPListener {
        guard (0...65535).contains(port) else {
            throw HTTPListenerError("\(portOption) \(port): expected a TCP port, 1-65535 (0: any free port)")
        }
        let state = ListenerState()
        let log = FlyingFoxLogger(logger: logger, state: state, name: name)
        let server: HTTPServer
        do {
            let host = bind == "localhost" ? "127.0.0.1" : bind
            if host.contains(":") {
                let address = try sockaddr_in6.inet6(ip6: host.trimmingCharacters(in: ["[", "]"]), port: UInt16(port))
                server = HTTPServer(address: address, timeout: timeout, logger: log, handler: handler)
            } else {
                let address = try sockaddr_in.inet(ip4: host, port: UInt16(port))
                server = HTTPServer(address: address, timeout: timeout, logger: log, handler: handler)
            }
        } catch {
            throw HTTPListenerError(
                "\(bindOption) \(bind): not an IPv4 or IPv6 address (e.g. 127.0.0.1, 0.0.0.0, ::1, ::)"
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
                throw HTTPListenerError("\(name): cannot listen on \(urlHost(bind)):\(port): \(describe(error))")
            }
            if Date() > deadline {
                task.cancel()
                throw HTTPListenerError("\(name): cannot listen on \(urlHost(bind)):\(port): timed out")
            }
            try? await Task.sleep(nanoseconds: 2_000_000)
        }
        var actualPort = port
        switch await server.listeningAddress {
        case .ip4(_, let p), .ip6(_, let p): actualPort = Int(p)
        default: break
        }
        state.isServing = true
        return HTTPListener(port: actualPort, bind: bind, server: server, task: task, state: state)
    }

    /// Stops listening, gives requests in progress `grace` seconds to finish, and returns when the server is gone.
    ///
    /// FlyingFox's accept loop only ends when cancelled, so a stop always takes the whole grace period: keep it short.
    public func stop(grace: TimeInterval = 0.2) async {
        state.isServing = false
        await server.stop(timeout: grace)
        task.cancel()
        await task.value
    }

    /// The host part of a URL for `bind`: wildcards become loopback, IPv6 goes in brackets.
    private static func urlHost(_ bind: String) -> String {
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

/// What the server task and its logger share with `start` and `stop`: the first failure, and whether it serves.
private final class ListenerState: @unchecked Sendable {
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

/// FlyingFox's own messages (connections, client disconnects) at debug level: they are noise in vphone's log. A
/// server that dies while serving is an error.
private struct FlyingFoxLogger: FlyingSocks.Logging {
    let logger: Logger
    let state: ListenerState
    let name: String

    func logDebug(_ debug: @autoclosure () -> String) {}
    func logInfo(_ info: @autoclosure () -> String) { logger.trace("http: \(info())") }
    func logWarning(_ warning: @autoclosure () -> String) { logger.debug("http: \(warning())") }
    func logError(_ error: @autoclosure () -> String) { logger.debug("http: \(error())") }
    func logCritical(_ critical: @autoclosure () -> String) {
        if state.isServing {
            logger.error("\(name): \(critical())")
        } else {
            logger.debug("http: \(critical())")
        }
    }
}
