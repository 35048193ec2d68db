// The Transport interface: fetch one URL with the phone's options, get bytes or a classified failure
// plus timings (ARCHITECTURE rule 4). Pure values; the libcurl engine is in CurlTransport.

// MARK: - Request

/// One download as the phone asks for it.
///
/// ```swift
/// var request = FetchRequest(url: "https://prov.example.com/KX-UTG300.cfg",
///                            userAgent: "Panasonic_KX-UTG300/03.210 (0080f0c571eb)")
/// request.extraCAFile = "/path/to/roots.pem"
/// let result = await transport.fetch(request)
/// ```
public struct FetchRequest: Sendable {
    /// The URL, `http`, `https`, `tftp` or `ftp` only. May carry `user:password@` (spec §3).
    public var url: String
    /// Sent exactly as given (spec §1: servers identify the phone by parsing it).
    public var userAgent: String
    /// Time allowed to resolve and connect (TCP and TLS). 0 or less: no limit.
    public var connectTimeoutMs: Int = 10_000
    /// Time allowed for the whole transfer, redirects included. 0 or less: no limit.
    public var totalTimeoutMs: Int = 60_000
    /// The transfer is aborted as soon as the body would exceed this many bytes; the rest is never read.
    public var maxBytes: Int = 240 * 1024
    /// A PEM file of root certificates trusted in addition to the system store (spec §5: roots from
    /// `<Certs>`).
    public var extraCAFile: String? = nil
    /// PEM root certificates held in memory (the phone keeps them in flash), trusted in addition to the
    /// system store and to `extraCAFile`. `nil` or empty: none.
    ///
    /// ```swift
    /// request.extraCAPEM = Array(rootsFromFlash.utf8)   // "-----BEGIN CERTIFICATE-----\n..."
    /// ```
    public var extraCAPEM: [UInt8]? = nil
    /// Disables TLS verification of the server certificate and name (labs only).
    public var insecure: Bool = false
    /// HTTP Basic or Digest credentials (whichever the server asks for), also used as the FTP login.
    public var username: String? = nil
    public var password: String? = nil
    /// `host:port` of an HTTP proxy. `nil`: no proxy, even if the environment names one.
    public var proxy: String? = nil
    /// Basic or Digest credentials for the proxy (whichever it asks for with its 407).
    public var proxyUsername: String? = nil
    public var proxyPassword: String? = nil
    /// Local interface or address to connect from, as `CURLOPT_INTERFACE` takes it (`host!127.0.0.2`).
    public var sourceInterface: String? = nil
    /// `false` (the default): every fetch opens its own connection and closes it afterwards, as a
    /// phone never borrows another phone's connection.
    public var reuseConnection: Bool = false
    /// With `reuseConnection`, connections (and TLS sessions) are reused only between requests of the
    /// same group, e.g. one group per virtual phone. `nil`: reuse any idle connection of the loop.
    public var connectionGroup: UInt64? = nil

    public init(url: String, userAgent: String) {
        self.url = url
        self.userAgent = userAgent
    }
}

// MARK: - Response

/// When each phase of a transfer ended, in microseconds since the transfer started, as libcurl
/// reports them (`CURLINFO_*_TIME_T`): so `dnsUs <= connectUs <= tlsUs <= firstByteUs <= totalUs`,
/// except that `tlsUs` is 0 without TLS. A phase that was never reached is 0.
public struct FetchTimings: Sendable, Hashable {
    public var dnsUs: Int64
    public var connectUs: Int64
    public var tlsUs: Int64
    public var firstByteUs: Int64
    public var totalUs: Int64

    public init(dnsUs: Int64 = 0, connectUs: Int64 = 0, tlsUs: Int64 = 0, firstByteUs: Int64 = 0, totalUs: Int64 = 0) {
        self.dnsUs = dnsUs
        self.connectUs = connectUs
        self.tlsUs = tlsUs
        self.firstByteUs = firstByteUs
        self.totalUs = totalUs
    }

    public static let zero = FetchTimings()
}

/// A completed download.
public struct FetchResponse: Sendable {
    /// HTTP status (2xx), the last FTP reply, or 0 for TFTP: all mean success. The FTP reply is 226
    /// (transfer complete), or 221 (goodbye) when the connection is closed after the transfer, as it is
    /// unless `reuseConnection`.
    public var status: Int
    public var body: [UInt8]
    /// The URL the body finally came from, after redirects, as libcurl reports it. It can carry
    /// `user:password@`: show it through `CurlTransport.redactedURL(_:)`.
    public var effectiveURL: String
    /// The `Content-Type` header, if the server sent one.
    public var contentType: String?
    public var timings: FetchTimings

    public init(
        status: Int,
        body: [UInt8],
        effectiveURL: String,
        contentType: String? = nil,
        timings: FetchTimings = .zero
    ) {
        self.status = status
        self.body = body
        self.effectiveURL = effectiveURL
        self.contentType = contentType
        self.timings = timings
    }
}

// MARK: - Failure

/// Why a download failed, in words a user can act on.
public struct FetchFailure: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// The server (or proxy) name does not resolve.
        case dns
        /// Nothing accepts connections at that address and port.
        case connect
        /// TLS handshake or certificate verification failed.
        case tls
        /// The server answered with an HTTP error (or a redirect that could not be followed).
        case httpStatus = "http_status"
        /// The connect or total timeout expired.
        case timeout
        /// The body exceeded `FetchRequest.maxBytes`; the rest was not read.
        case tooLarge = "too_large"
        /// The URL, or a redirect, uses a scheme the phone refuses (only http, https, tftp, ftp;
        /// redirects only to http and https).
        case protocolRefused = "protocol_refused"
        /// Too many redirects (more than 5).
        case redirect
        /// The credentials were rejected (HTTP 401/407 with credentials given, FTP login denied).
        case auth
        /// The FTP or TFTP server has no such file (HTTP 404 is `httpStatus`).
        case notFound = "not_found"
        /// The connection broke mid-transfer.
        case transfer
        /// Anything else; the message carries libcurl's explanation.
        case other
    }

    public var kind: Kind
    /// The HTTP status, for `httpStatus` and HTTP `auth` failures.
    public var httpStatus: Int?
    /// Names the URL's host, what happened and the likely fix. Never contains a password.
    public var message: String
    public var timings: FetchTimings

    public init(kind: Kind, httpStatus: Int? = nil, message: String, timings: FetchTimings = .zero) {
        self.kind = kind
        self.httpStatus = httpStatus
        self.message = message
        self.timings = timings
    }

    public var description: String { "\(kind.rawValue): \(message)" }
}

// MARK: - Transport

/// Something that fetches URLs: `CurlTransport` for real, a scripted one in tests.
public protocol Transport: Sendable {
    /// Starts a download and calls `completion` exactly once with its outcome.
    ///
    /// Implementations say on which thread `completion` runs; it must return quickly.
    func fetch(_ request: FetchRequest, completion: @escaping @Sendable (Result<FetchResponse, FetchFailure>) -> Void)
}

/// A transport whose completions run on one thread that is also a serial executor (`CurlLane`): an actor on
/// `executor` can take a completion synchronously when `canCompleteInline` says so.
public protocol TransportLane: Transport {
    /// The executor of the thread the completions run on.
    var executor: UnownedSerialExecutor { get }
    /// True where a completion may enter an actor on `executor` synchronously (`assumeIsolated`).
    var canCompleteInline: Bool { get }
    /// The same thread as a task executor, for tasks that drive the actors of this lane (nil: the global pool).
    var taskExecutor: (any TaskExecutor)? { get }
}

extension Transport {
    /// Downloads `request.url` and returns the body or a classified failure.
    ///
    /// ```swift
    /// switch await transport.fetch(FetchRequest(url: url, userAgent: agent)) {
    /// case .success(let response): use(response.body)
    /// case .failure(let failure): print(failure)   // "http_status: prov.example.com answered HTTP 404 ..."
    /// }
    /// ```
    public func fetch(_ request: FetchRequest) async -> Result<FetchResponse, FetchFailure> {
        await withCheckedContinuation { continuation in
            fetch(request) { result in continuation.resume(returning: result) }
        }
    }
}
