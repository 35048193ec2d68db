import FlyingFox
import Foundation
import Logging
import PhoneCore
import PhoneRuntime

/// Routes one request to the phone: the whole API, with no socket (tests can call `handleRequest` directly).
///
/// | route | answer |
/// |---|---|
/// | `GET /` | the HTML status page |
/// | `GET /status` | state, IP, identity, boot count, last cycle, outcome per file, timers |
/// | `GET /config` | `{NAME: {value, source, perm?, access?}}`, secrets `********` (`?changed=1`: no factory rows) |
/// | `GET /config/NAME` | one row of the above, with its name |
/// | `PUT /config/NAME` | a local edit; body `{"value": "..."}`; 404 unknown, 403 `perm="R"`, 400 bad JSON |
/// | `GET /events` | the flash event log, oldest first (`?limit=N`: the newest N) |
/// | `POST /resync` | a provisioning cycle; answers when it has finished, with its outcome |
/// | `POST /reboot` | a power cycle; answers after the boot-time cycle |
/// | `POST /factory-reset` | clears flash but the identity, then reboots |
/// | `GET /healthz` | `ok` (200) while the phone runs on a readable flash, else 503; no password asked |
struct ControlHandler: HTTPHandler {
    let runtime: PhoneRuntime
    let auth: ControlAuth
    let logger: Logger

    /// Request bodies larger than this are refused (a parameter value is a few hundred bytes at most).
    static let maxBodyBytes = 64 * 1024

    func handleRequest(_ request: HTTPRequest) async throws -> HTTPResponse {
        var response = await respond(to: request)
        response.headers[.cacheControl] = "no-store"
        response.headers[HTTPHeader("X-Content-Type-Options")] = "nosniff"
        logger.debug(
            "control API: \(request.method.rawValue) \(request.path) \(response.statusCode.code)",
            metadata: ["client": "\(request.remoteIPAddress ?? "-")"]
        )
        return response
    }

    // MARK: - Routing

    enum Route: Equatable {
        case page, status, config
        case parameter(String)
        case events, resync, reboot, factoryReset, health

        init?(path: String) {
            switch path {
            case "/", "/index.html": self = .page
            case "/status": self = .status
            case "/config": self = .config
            case "/events": self = .events
            case "/resync": self = .resync
            case "/reboot": self = .reboot
            case "/factory-reset": self = .factoryReset
            case "/healthz": self = .health
            default:
                let prefix = "/config/"
                guard path.hasPrefix(prefix), path.count > prefix.count else { return nil }
                let name = String(path.dropFirst(prefix.count))
                guard !name.contains("/") else { return nil }
                self = .parameter(name)  // FlyingFox hands the path over percent-decoded
            }
        }

        var methods: [HTTPMethod] {
            switch self {
            case .page, .status, .config, .events, .health: return [.GET]
            case .parameter: return [.GET, .PUT]
            case .resync, .reboot, .factoryReset: return [.POST]
            }
        }
    }

    func respond(to request: HTTPRequest) async -> HTTPResponse {
        let route = Route(path: request.path)
        // The health check answers everyone (container engines know no password); everything else asks first,
        // so a stranger learns nothing, not even which pages exist.
        if route != .health, await !auth.admits(request.headers[.authorization], runtime: runtime) {
            let model = await runtime.status().identity.model
            var r = Self.error(
                .unauthorized,
                "unauthorized",
                request.headers[.authorization] == nil
                    ? "this phone's web interface needs the admin password (HTTP Basic, user \"admin\")"
                    : "wrong user or password (HTTP Basic, user \"admin\")"
            )
            r.headers[HTTPHeader("WWW-Authenticate")] = "Basic realm=\"\(model)\", charset=\"UTF-8\""
            return r
        }
        guard let route else {
            return Self.error(.notFound, "not_found", "no such page: \(request.path); GET / lists the routes")
        }
        guard route.methods.contains(request.method) else {
            let allowed = route.methods.map(\.rawValue)
            var r = Self.error(
                .methodNotAllowed,
                "method_not_allowed",
                "\(request.method.rawValue) \(request.path) is not served; use \(allowed.joined(separator: " or "))"
            )
            r.headers[HTTPHeader("Allow")] = allowed.joined(separator: ", ")
            return r
        }
        switch route {
        case .page:
            return await page()
        case .status:
            return Self.json(.ok, ControlJSON.status(await runtime.status(), host: HostAddress.primary()))
        case .config:
            let changedOnly = ["1", "true", "yes", "y"].contains(request.query["changed"]?.lowercased() ?? "")
            var rows = await runtime.effectiveConfig()
            if changedOnly { rows.removeAll { $0.source == .factory } }
            return Self.json(.ok, ControlJSON.config(rows))
        case .parameter(let name):
            if request.method == .PUT { return await edit(name, request) }
            guard let row = await runtime.effectiveConfig().first(where: { $0.name == name }) else {
                return Self.error(.notFound, "unknown_parameter", "\(name) is not a parameter of this phone")
            }
            return Self.json(.ok, ControlJSON.parameter(row))
        case .events:
            return await events(request)
        case .resync:
            return Self.cycle(await runtime.resync(reason: "control API: POST /resync"))
        case .reboot:
            return Self.cycle(await runtime.reboot())
        case .factoryReset:
            do {
                return Self.cycle(try await runtime.factoryReset())
            } catch {
                return Self.refusal(error)
            }
        case .health:
            return await health()
        }
    }

    // MARK: - Handlers

    private func health() async -> HTTPResponse {
        let status = await runtime.status()
        if status.state == "stopped" { return Self.text(.serviceUnavailable, "stopped\n") }
        if let error = await runtime.flashError { return Self.text(.serviceUnavailable, "flash: \(error)\n") }
        do {
            _ = try await runtime.events(limit: 1)  // the flash still answers a read
        } catch {
            return Self.text(.serviceUnavailable, "flash: \(error.message)\n")
        }
        return Self.text(.ok, "ok\n")
    }

    private func events(_ request: HTTPRequest) async -> HTTPResponse {
        var limit: Int?
        if let text = request.query["limit"] {
            guard let n = Int(text), n >= 0 else {
                return Self.error(.badRequest, "bad_request", "limit=\(text): expected a whole number, 0 or more")
            }
            limit = n
        }
        do {
            return Self.json(.ok, ControlJSON.events(try await runtime.events(limit: limit)))
        } catch {
            return Self.refusal(error)
        }
    }

    private func edit(_ name: String, _ request: HTTPRequest) async -> HTTPResponse {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > Self.maxBodyBytes {
            return Self.error(
                .payloadTooLarge,
                "payload_too_large",
                "the body is \(length) bytes; at most \(Self.maxBodyBytes)"
            )
        }
        let body: Data
        do {
            body = try await request.bodyData
        } catch {
            return Self.error(.badRequest, "bad_request", "the body could not be read: \(error.localizedDescription)")
        }
        guard body.count <= Self.maxBodyBytes else {
            return Self.error(
                .payloadTooLarge,
                "payload_too_large",
                "the body is \(body.count) bytes; at most \(Self.maxBodyBytes)"
            )
        }
        let value: String
        switch ControlJSON.editValue(body) {
        case .success(let v): value = v
        case .failure(let problem): return Self.error(.badRequest, problem.kind, problem.message)
        }
        if await runtime.status().state == "stopped" {
            return Self.error(.serviceUnavailable, "stopped", "the phone is stopped")
        }
        do {
            try await runtime.setParameter(name, value: value)
        } catch {
            return Self.refusal(error)
        }
        logger.info("control API: local edit of \(name)")
        guard let row = await runtime.effectiveConfig().first(where: { $0.name == name }) else {
            return Self.error(.internalServerError, "internal", "\(name) was edited but is not in the configuration")
        }
        return Self.json(.ok, ControlJSON.parameter(row))
    }

    private func page() async -> HTTPResponse {
        let html = StatusPage.render(
            status: await runtime.status(),
            config: await runtime.effectiveConfig(),
            events: (try? await runtime.events(limit: 15)) ?? [],
            host: HostAddress.primary()
        )
        var r = HTTPResponse(statusCode: .ok, body: Data(html.utf8))
        r.headers[.contentType] = "text/html; charset=utf-8"
        r.headers[HTTPHeader("Content-Security-Policy")] = "default-src 'none'; style-src 'unsafe-inline'"
        return r
    }

    // MARK: - Responses

    static func cycle(_ report: CycleReport?) -> HTTPResponse {
        guard let report else {
            return error(.serviceUnavailable, "stopped", "the phone stopped before the cycle finished")
        }
        return json(.ok, ControlJSON.cycle(report))
    }

    /// A refusal of the runtime, with the status a client can act on.
    static func refusal(_ e: ControlError) -> HTTPResponse {
        switch e.kind {
        case .unknownParameter: return error(.notFound, e.kind.rawValue, e.message)
        case .readOnly: return error(.forbidden, e.kind.rawValue, e.message)
        case .invalidValue: return error(.unprocessableContent, e.kind.rawValue, e.message)
        case .stopped: return error(.serviceUnavailable, e.kind.rawValue, e.message)
        case .flash: return error(.internalServerError, e.kind.rawValue, e.message)
        }
    }

    static func error(_ status: HTTPStatusCode, _ kind: String, _ message: String) -> HTTPResponse {
        json(status, ["error": kind, "message": message])
    }

    static func json(_ status: HTTPStatusCode, _ object: Any) -> HTTPResponse {
        var r = HTTPResponse(statusCode: status, body: ControlJSON.encode(object))
        r.headers[.contentType] = "application/json; charset=utf-8"
        return r
    }

    static func text(_ status: HTTPStatusCode, _ text: String) -> HTTPResponse {
        var r = HTTPResponse(statusCode: status, body: Data(text.utf8))
        r.headers[.contentType] = "text/plain; charset=utf-8"
        return r
    }
}
