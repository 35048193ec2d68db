import Foundation
import HTTPServing
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
    private let listener: HTTPListener
    private let logger: Logger

    /// The port the API listens on (the one chosen by the system when started with port 0).
    public var port: Int { listener.port }
    /// The address it is bound to, as given (`127.0.0.1`, `0.0.0.0`, `::`, ...).
    public var bind: String { listener.bind }
    /// `http://ADDRESS:PORT/` (IPv6 in brackets; a wildcard bind shows as 127.0.0.1).
    public var url: String { listener.url }

    private init(listener: HTTPListener, logger: Logger) {
        self.listener = listener
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
        let listener: HTTPListener
        do {
            listener = try await HTTPListener.start(
                handler: ControlHandler(runtime: runtime, auth: auth, logger: logger),
                bind: bind,
                port: port,
                timeout: requestTimeout,
                name: "control API",
                portOption: "--http-port",
                bindOption: "--http-bind",
                logger: logger
            )
        } catch {
            throw ControlServerError(error.description)
        }
        let api = ControlServer(listener: listener, logger: logger)
        logger.notice("control API listening on \(api.url)", metadata: ["auth": "\(auth.kind)"])
        return api
    }

    /// Stops listening, gives requests in progress `grace` seconds to finish, and returns when the server is gone.
    ///
    /// FlyingFox's accept loop only ends when cancelled, so a stop always takes the whole grace period: keep it short
    /// (a stopped phone answers every pending request at once, with 503).
    public func stop(grace: TimeInterval = 0.2) async {
        await listener.stop(grace: grace)
        logger.debug("control API stopped")
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
