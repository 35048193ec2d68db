import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// `--metrics-port`: Prometheus text on `GET /metrics`, served by a thread of its own on 127.0.0.1.
///
/// The phones of a storm keep Swift's cooperative pool busy; a server on that pool answered one scrape in 8 s,
/// near Prometheus's 10 s timeout. This one never waits for the pool: it accepts, reads the request line, renders
/// the snapshot (`render` takes the statistics' lock only to copy them) and answers, one scrape at a time, each
/// connection bounded by a 2 s read timeout. Only the request line is looked at: `GET /metrics` (a query string is
/// allowed) gets the text, any other path 404, any other method 405; the connection is closed after each answer.
///
/// ```swift
/// let endpoint = try MetricsEndpoint(port: 9464) { stats.report(durationS: elapsed()).prometheus() }
/// defer { endpoint.stop() }
/// ```
public final class MetricsEndpoint: @unchecked Sendable {
    // @unchecked: `listener` is immutable; `stopping` is guarded by `lock`; the thread owns every client socket.
    private let listener: Int32
    private let lock = NSLock()
    private var stopping = false
    private let finished = DispatchSemaphore(value: 0)

    /// Why the endpoint could not start.
    public struct StartError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Listens on 127.0.0.1:`port` and starts serving at once.
    /// - Throws: `StartError` when the port cannot be bound (in use, no permission).
    public init(port: UInt16, render: @escaping @Sendable () -> String) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw StartError(description: "metrics port \(port): socket: \(Self.errnoText())") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(fd, 64) == 0 else {
            let why = Self.errnoText()
            close(fd)
            throw StartError(description: "metrics port \(port) on 127.0.0.1: \(why)")
        }
        listener = fd
        let thread = Thread { [self] in
            serve(render)
            finished.signal()
        }
        thread.name = "vphone-metrics"
        thread.start()
    }

    /// Stops listening and waits for the serving thread (at most one scrape in progress) to end.
    public func stop() {
        lock.lock()
        let already = stopping
        stopping = true
        lock.unlock()
        guard !already else { return }
        shutdown(listener, Int32(SHUT_RDWR))
        finished.wait()
        close(listener)
    }

    private var isStopping: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopping
    }

    private func serve(_ render: () -> String) {
        while !isStopping {
            var poller = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 250) > 0 else { continue }
            let client = accept(listener, nil, nil)
            guard client >= 0 else { continue }
            answer(client, render)
            close(client)
        }
    }

    private func answer(_ client: Int32, _ render: () -> String) {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        // The request line is all that matters; read until it is complete (or 8 KiB, or the timeout).
        var head: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 2048)
        while head.count < 8192, !head.contains(UInt8(ascii: "\n")) {
            let n = chunk.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { return }
            head += chunk[0..<n]
        }
        let line = head.prefix { $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\n") }
        let parts = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: true).map {
            String(decoding: $0, as: UTF8.self)
        }
        let status: String
        var body = ""
        var type = "text/plain; charset=utf-8"
        if parts.count < 2 || parts[0] != "GET" {
            status = "405 Method Not Allowed"
            body = "only GET /metrics\n"
        } else if parts[1] == "/metrics" || parts[1].hasPrefix("/metrics?") {
            status = "200 OK"
            body = render()
            type = "text/plain; version=0.0.4"
        } else {
            status = "404 Not Found"
            body = "only GET /metrics\n"
        }
        let bytes = Array(body.utf8)
        let response =
            Array(
                "HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(bytes.count)\r\nConnection: close\r\n\r\n"
                    .utf8
            ) + bytes
        var sent = 0
        while sent < response.count {
            let n = response[sent...].withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return }
            sent += n
        }
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }
}
